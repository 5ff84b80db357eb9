package redis

import (
	"context"
	"fmt"

	"github.com/heraldpush/herald/pubsub"
)

var _ pubsub.Conditional = (*Broker)(nil)

// ReadTopic returns topic's messages after the position after, at most
// limit of them (limit <= 0: all), and the topic's tail, read atomically by
// one script (read_topic.lua). It implements pubsub.Conditional.
func (b *Broker) ReadTopic(ctx context.Context, topic string, after pubsub.Position, limit int) ([]*pubsub.Message, pubsub.Position, error) {
	if err := b.check(ctx); err != nil {
		return nil, pubsub.Position{}, err
	}
	for range maxEpochRetries {
		epoch := b.Epoch()
		if !after.IsZero() && after.Epoch != epoch {
			if err := b.refreshEpoch(ctx); err != nil {
				return nil, pubsub.Position{}, err
			}
			if epoch = b.Epoch(); after.Epoch != epoch {
				return nil, pubsub.Position{}, fmt.Errorf("%w: position %v, log %s", pubsub.ErrEpochChanged, after, epoch)
			}
		}
		k := b.keys(epoch)
		res, err := readTopicScr.Run(ctx, b.rdb, []string{b.meta, b.epochs, k.topicPrefix + topic},
			epoch, pubsub.NewEpoch(), after.Offset, max(limit, 0), b.o.Retention.MaxEvents).Slice()
		if err != nil {
			return nil, pubsub.Position{}, b.fail(ctx, "read topic", err)
		}
		b.reachable()
		switch str(res[0]) {
		case "epoch":
			b.setEpoch(str(res[1]))
			continue
		case "ok":
		default:
			return nil, pubsub.Position{}, fmt.Errorf("redis: read topic: unexpected reply %v", res)
		}
		msgs, err := decodeItems(epoch, res[2])
		if err != nil {
			return nil, pubsub.Position{}, err
		}
		if len(msgs) == 0 {
			msgs = nil
		}
		var tail pubsub.Position
		if off := toUint(res[1]); off > 0 {
			tail = pubsub.Position{Epoch: epoch, Offset: off}
		}
		return msgs, tail, nil
	}
	return nil, pubsub.Position{}, fmt.Errorf("%w: redis: read topic: the epoch keeps changing", pubsub.ErrUnavailable)
}

// PublishIf appends m, which has one topic, if that topic's tail is tail:
// publish.lua checks the tail and appends in one script, as a batch of one
// through the same code as Publish (live delivery, retained and final
// state, retention), with no ID to deduplicate. It implements
// pubsub.Conditional.
func (b *Broker) PublishIf(ctx context.Context, tail pubsub.Position, m *pubsub.Message) (pubsub.Position, error) {
	if len(m.Topics) != 1 {
		return pubsub.Position{}, fmt.Errorf("redis: publish if: a conditional append has one topic, not %d", len(m.Topics))
	}
	if _, err := b.publishBatch(ctx, []*pubsub.Message{m}, &tail); err != nil {
		return pubsub.Position{}, err
	}
	return m.Pos, nil
}
