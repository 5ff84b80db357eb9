package hub_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
)

// oneByOne hides the memory broker's PublishBatch.
type oneByOne struct{ pubsub.Broker }

func TestPublishBatch(t *testing.T) {
	for _, batched := range []bool{true, false} {
		name := "broker batch"
		if !batched {
			name = "one by one"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, pubsub.Retention{}, nil)
			h := e.hub
			if !batched {
				h = hub.New(oneByOne{e.broker}, nil) // publishes only: no Run needed
			}
			sub, err := e.hub.Subscribe(context.Background(), hub.Request{Topics: []string{"a"}})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			msgs := []*pubsub.Message{
				{Topics: []string{"a", "a"}, Data: "1"},
				{Topics: []string{"a"}, Data: "2"},
				{Topics: []string{"bad\x00topic"}, Data: "3"},
				{Topics: []string{"a"}, Data: "4"},
			}
			n, err := h.PublishBatch(context.Background(), msgs)
			if n != 2 || !errors.Is(err, hub.ErrInvalidTopic) {
				t.Fatalf("PublishBatch: %d, %v", n, err)
			}
			if len(msgs[0].Topics) != 1 {
				t.Errorf("duplicate topics kept: %v", msgs[0].Topics)
			}
			if !msgs[3].Pos.IsZero() {
				t.Error("a message after the invalid one was published")
			}
			if got := h.Stats().Published; got != 2 {
				t.Errorf("published %d, want 2", got)
			}
			evs, _ := sub.Pop(nil)
			for len(evs) < 3 { // the position marker, then 1 and 2
				select {
				case <-sub.Ready():
				case <-time.After(5 * time.Second):
					t.Fatalf("subscriber got %d events", len(evs))
				}
				evs, _ = sub.Pop(evs)
			}
			if len(evs) != 3 || evs[1].Msg.Data != "1" || evs[2].Msg.Data != "2" {
				t.Fatalf("subscriber got %d events", len(evs))
			}
		})
	}
}
