package hub

import (
	"context"
	"fmt"
	"slices"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/sse"
)

// checkMessage refuses, with ErrInvalidTopic or ErrInvalidMessage, a
// message that could not be delivered, and drops duplicate topics.
func checkMessage(m *pubsub.Message) error {
	if len(m.Topics) == 0 {
		return fmt.Errorf("%w: no topic", ErrInvalidTopic)
	}
	dup := false
	for i, t := range m.Topics {
		if err := ValidateTopic(t); err != nil {
			return err
		}
		dup = dup || slices.Contains(m.Topics[:i], t)
	}
	if err := sse.ValidType(m.Type); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if dup {
		m.Topics = dedupe(m.Topics)
	}
	return nil
}

// PublishBatch publishes msgs in order, with the effect of Publish called
// for each, in one broker call when the broker implements
// pubsub.BatchPublisher. It stops at the first message that cannot be
// published and returns how many were published, with that message's
// error.
func (h *Hub) PublishBatch(ctx context.Context, msgs []*pubsub.Message) (int, error) {
	valid, verr := len(msgs), error(nil)
	for i, m := range msgs {
		if err := checkMessage(m); err != nil {
			valid, verr = i, err
			break
		}
	}
	bp, ok := h.broker.(pubsub.BatchPublisher)
	if !ok || valid < 2 {
		for i, m := range msgs[:valid] {
			if _, err := h.broker.Publish(ctx, m); err != nil {
				return i, err
			}
			h.stats.published.Add(1)
		}
		return valid, verr
	}
	n, err := bp.PublishBatch(ctx, msgs[:valid])
	h.stats.published.Add(uint64(n))
	if err != nil {
		return n, err
	}
	return valid, verr
}
