package shard

import (
	"context"
	"errors"
	"fmt"

	"github.com/heraldpush/herald/pubsub"
)

var _ pubsub.Conditional = (*Broker)(nil)

// ErrNotConditional is returned by ReadTopic and PublishIf when the
// topic's shard does not implement pubsub.Conditional.
var ErrNotConditional = errors.New("shard: the topic's shard does not implement pubsub.Conditional")

// conditional returns topic's shard as a pubsub.Conditional.
func (b *Broker) conditional(topic string) (pubsub.Conditional, error) {
	k := b.ShardOf(topic)
	c, ok := b.shards[k].(pubsub.Conditional)
	if !ok {
		return nil, fmt.Errorf("%w (shard %d, %T)", ErrNotConditional, k, b.shards[k])
	}
	return c, nil
}

// ReadTopic reads topic on its shard: positions are the shard's. It
// implements pubsub.Conditional.
func (b *Broker) ReadTopic(ctx context.Context, topic string, after pubsub.Position, limit int) ([]*pubsub.Message, pubsub.Position, error) {
	c, err := b.conditional(topic)
	if err != nil {
		return nil, pubsub.Position{}, err
	}
	return c.ReadTopic(ctx, topic, after, limit)
}

// PublishIf appends m to its one topic's shard if the topic's tail there
// is tail. It implements pubsub.Conditional.
func (b *Broker) PublishIf(ctx context.Context, tail pubsub.Position, m *pubsub.Message) (pubsub.Position, error) {
	if len(m.Topics) != 1 {
		return pubsub.Position{}, fmt.Errorf("shard: publish if: a conditional append has one topic, not %d", len(m.Topics))
	}
	c, err := b.conditional(m.Topics[0])
	if err != nil {
		return pubsub.Position{}, err
	}
	return c.PublishIf(ctx, tail, m)
}

var _ pubsub.TopicStreamer = (*Broker)(nil)

// ReadTopicTo reads topic on its shard as pubsub.TopicStreamer does, when
// that shard implements it; otherwise it returns errors.ErrUnsupported
// (wrapped), and the caller reads with ReadTopic. It implements
// pubsub.TopicStreamer.
func (b *Broker) ReadTopicTo(ctx context.Context, topic string, after pubsub.Position, limit int, fn func(m *pubsub.Message) error) (pubsub.Position, error) {
	k := b.ShardOf(topic)
	ts, ok := b.shards[k].(pubsub.TopicStreamer)
	if !ok {
		return pubsub.Position{}, fmt.Errorf("shard: read topic to: shard %d (%T): %w", k, b.shards[k], errors.ErrUnsupported)
	}
	return ts.ReadTopicTo(ctx, topic, after, limit, fn)
}
