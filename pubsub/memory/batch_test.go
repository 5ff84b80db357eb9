package memory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

type collect struct{ got []uint64 }

func (c *collect) HandleMessage(m *pubsub.Message) { c.got = append(c.got, m.Pos.Offset) }
func (c *collect) HandleEpoch(string)              {}

// TestPublishBatch: a batch has the effect of its messages published one by
// one, stops at the first it cannot publish, and says how many it did.
func TestPublishBatch(t *testing.T) {
	b := newBroker(t, nil)
	h := &collect{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	sh := startSignal(h)
	go func() { done <- b.Listen(ctx, sh) }()
	<-sh.ch

	msgs := []*pubsub.Message{
		{Topics: []string{"a"}, Data: "1"},
		{Topics: []string{"a", "b"}, Data: "2"},
		{Topics: []string{"b"}, Data: "3", Final: true},
	}
	if n, err := b.PublishBatch(context.Background(), msgs); n != 3 || err != nil {
		t.Fatalf("PublishBatch: %d, %v", n, err)
	}
	for i, m := range msgs {
		if m.Pos.Offset != uint64(i+1) || m.Pos.Epoch != b.Epoch() || m.Time.IsZero() {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	// b is finished: the batch stops at its message.
	more := []*pubsub.Message{
		{Topics: []string{"a"}, Data: "4"},
		{Topics: []string{"b"}, Data: "5"},
		{Topics: []string{"a"}, Data: "6"},
	}
	n, err := b.PublishBatch(context.Background(), more)
	if n != 1 || !errors.Is(err, pubsub.ErrTopicFinished) {
		t.Fatalf("batch over a finished topic: %d, %v", n, err)
	}
	if more[0].Pos.Offset != 4 || !more[2].Pos.IsZero() {
		t.Fatalf("positions %v %v", more[0].Pos, more[2].Pos)
	}
	snap, err := b.Read(context.Background(), pubsub.Query{Topics: []string{"a"}, After: &pubsub.Position{Epoch: b.Epoch()}})
	if err != nil || len(snap.Events) != 3 || snap.Head.Offset != 4 {
		t.Fatalf("history of a: %d events, head %v, %v", len(snap.Events), snap.Head, err)
	}
	if n, err := b.PublishBatch(context.Background(), []*pubsub.Message{{Data: "no topic"}}); n != 0 || err == nil {
		t.Fatalf("message without topic: %d, %v", n, err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if n, err := b.PublishBatch(cctx, more[2:]); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %d, %v", n, err)
	}
	cancel()
	<-done // the handler's calls are over
	if len(h.got) != 4 || h.got[3] != 4 {
		t.Fatalf("handler got %v, want offsets 1-4 in order", h.got)
	}
}
