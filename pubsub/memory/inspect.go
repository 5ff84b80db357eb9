package memory

import (
	"context"
	"sort"

	"github.com/heraldpush/herald/pubsub"
)

var _ pubsub.Inspector = (*Broker)(nil)

// Topics describes every topic the broker holds, sorted by name.
func (b *Broker) Topics(ctx context.Context) ([]pubsub.TopicInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]pubsub.TopicInfo, 0, len(b.topics))
	for name, tl := range b.topics {
		out = append(out, pubsub.TopicInfo{Topic: name, Messages: len(tl.log), Retained: tl.retained != nil, Finished: tl.final != nil})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out, nil
}
