package redis_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
)

// TestHugeBatchOneTopic: a batch of more messages for one topic than Lua's
// unpack() can spread (about 8000) is stored whole: one failed RPUSH
// would leave the batch half written (ID keys set, some lists pushed, the
// counter not advanced).
func TestHugeBatchOneTopic(t *testing.T) {
	needRedis(t)
	p := uniquePrefix(t)
	b := open(t, p, pubsub.Retention{})
	defer b.Close()
	ctx := context.Background()
	const n = 9000
	batch := make([]*pubsub.Message, n)
	for i := range batch {
		batch[i] = &pubsub.Message{Topics: []string{"a", "b"}, Data: fmt.Sprint(i), ID: fmt.Sprint("id", i)}
	}
	if got, err := b.PublishBatch(ctx, batch); got != n || err != nil {
		t.Fatalf("PublishBatch of %d = %d, %v", n, got, err)
	}
	snap, err := b.Read(ctx, pubsub.Query{Topics: []string{"a", "b"}, After: &pubsub.Position{Epoch: b.Epoch()}})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Head.Offset != n || len(snap.Events) != n || snap.Events[n-1].Data != fmt.Sprint(n-1) {
		t.Fatalf("head %d, %d events; want %d of each", snap.Head.Offset, len(snap.Events), n)
	}
}

// TestLiveIDsPast1e14: the live stream's ids count bytes ever announced;
// past 10^14 (Lua prints such a number as "1e+14") every publish must
// still work and reach the listeners.
func TestLiveIDsPast1e14(t *testing.T) {
	needRedis(t)
	p := uniquePrefix(t)
	b := open(t, p, pubsub.Retention{})
	defer b.Close()
	ctx := context.Background()
	rdb := rawClient(t)
	if err := rdb.HSet(ctx, "{"+p+"}:v2:meta", "lb", "99999999999990").Err(); err != nil {
		t.Fatal(err)
	}
	h := pubsubtest.NewListener()
	pubsubtest.Listen(t, b, h)
	h.Settle(t)
	for i := range 3 {
		if _, err := b.Publish(ctx, &pubsub.Message{Topics: []string{"x"}, Data: fmt.Sprint(i)}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	h.Wait(t, "the three messages", func() bool { return len(h.Messages()) == 3 })
	if e := h.Epochs(); len(e) != 0 {
		t.Fatalf("HandleEpoch(%v): the listener saw a gap", e)
	}
}
