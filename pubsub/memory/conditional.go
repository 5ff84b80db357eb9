package memory

import (
	"context"
	"fmt"
	"sort"

	"github.com/heraldpush/herald/pubsub"
)

var _ pubsub.Conditional = (*Broker)(nil)

// tailLocked returns topic's tail: the position of its newest message in
// history, or of its final message, or the zero Position. b.mu is held.
func (b *Broker) tailLocked(topic string) pubsub.Position {
	tl := b.topics[topic]
	if tl == nil {
		return pubsub.Position{}
	}
	var off uint64
	if n := len(tl.log); n > 0 {
		off = tl.log[n-1].m.Pos.Offset
	}
	if tl.final != nil {
		off = max(off, tl.final.Pos.Offset)
	}
	if tl.retained != nil {
		off = max(off, tl.retained.Pos.Offset)
	}
	if off == 0 {
		return pubsub.Position{}
	}
	return pubsub.Position{Epoch: b.epoch, Offset: off}
}

// ReadTopic returns topic's messages after the position after, at most
// limit of them (limit <= 0: all), and the topic's tail. It implements
// pubsub.Conditional. The messages are the broker's own, shared: callers
// must not modify them.
func (b *Broker) ReadTopic(ctx context.Context, topic string, after pubsub.Position, limit int) ([]*pubsub.Message, pubsub.Position, error) {
	if err := ctx.Err(); err != nil {
		return nil, pubsub.Position{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, pubsub.Position{}, pubsub.ErrClosed
	}
	if !after.IsZero() && after.Epoch != b.epoch {
		return nil, pubsub.Position{}, fmt.Errorf("%w: position %s, log %s", pubsub.ErrEpochChanged, after, b.epoch)
	}
	tail := b.tailLocked(topic)
	tl := b.topics[topic]
	if tl == nil {
		return nil, tail, nil
	}
	i := sort.Search(len(tl.log), func(i int) bool { return tl.log[i].m.Pos.Offset > after.Offset })
	rest := tl.log[i:]
	if limit > 0 && len(rest) > limit {
		rest = rest[:limit]
	}
	if len(rest) == 0 {
		return nil, tail, nil
	}
	out := make([]*pubsub.Message, len(rest))
	for j, e := range rest {
		out[j] = e.m
	}
	return out, tail, nil
}

// PublishIf appends m, which has exactly one topic, if and only if that
// topic's tail is tail. It implements pubsub.Conditional.
func (b *Broker) PublishIf(ctx context.Context, tail pubsub.Position, m *pubsub.Message) (pubsub.Position, error) {
	if err := ctx.Err(); err != nil {
		return pubsub.Position{}, err
	}
	if len(m.Topics) != 1 {
		return pubsub.Position{}, fmt.Errorf("memory: conditional publish: %d topics, want exactly one", len(m.Topics))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return pubsub.Position{}, pubsub.ErrClosed
	}
	topic := m.Topics[0]
	if tl := b.topics[topic]; tl != nil && tl.final != nil {
		return pubsub.Position{}, fmt.Errorf("%w: %q", pubsub.ErrTopicFinished, topic)
	}
	// A tail of another epoch is not the topic's: a conflict, like any
	// other tail that is not.
	if cur := b.tailLocked(topic); cur != tail {
		return pubsub.Position{}, fmt.Errorf("%w: %q is at %s, not %s", pubsub.ErrConflict, topic, cur, tail)
	}
	// The condition makes a retry safe: no deduplication by ID here.
	return b.publishLocked(m, b.now(), false)
}
