package redis_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

// TestConditionalAfterDeferredEviction: messages a batch evicted while
// publishing them stay in the log (the dead list) but are no longer the
// topic's: ReadTopic leaves them out, and a PublishIf naming one of them
// as the tail conflicts. A refused PublishIf still reaps the dead list;
// the right tail appends.
func TestConditionalAfterDeferredEviction(t *testing.T) {
	needRedis(t)
	p := uniquePrefix(t)
	b := open(t, p, pubsub.Retention{MaxEvents: 2})
	defer b.Close()
	ctx := context.Background()
	rdb := rawClient(t)
	base := "{" + p + "}:" + b.Epoch() + ":"
	var batch []*pubsub.Message
	for i := range 5 {
		batch = append(batch, &pubsub.Message{Topics: []string{"a"}, Data: fmt.Sprint(i)})
	}
	if n, err := b.PublishBatch(ctx, batch); n != 5 || err != nil {
		t.Fatalf("PublishBatch = %d, %v", n, err)
	}
	if n := rdb.LLen(ctx, base+"dead").Val(); n != 3 {
		t.Fatalf("dead list holds %d offsets, want 3", n)
	}
	msgs, tail, err := b.ReadTopic(ctx, "a", pubsub.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if tail != batch[4].Pos || len(msgs) != 2 || msgs[0].Pos != batch[3].Pos || msgs[1].Pos != batch[4].Pos {
		t.Fatalf("ReadTopic: %d messages, tail %v; want %v and %v, tail %v", len(msgs), tail, batch[3].Pos, batch[4].Pos, batch[4].Pos)
	}
	for _, stale := range []pubsub.Position{batch[2].Pos, batch[3].Pos, {}} {
		_, err := b.PublishIf(ctx, stale, &pubsub.Message{Topics: []string{"a"}, Data: "refused"})
		if !errors.Is(err, pubsub.ErrConflict) {
			t.Fatalf("PublishIf with tail %v (the tail is %v): %v, want ErrConflict", stale, tail, err)
		}
	}
	if n := rdb.Exists(ctx, base+"dead").Val(); n != 0 {
		t.Error("dead list still exists after a refused PublishIf")
	}
	if n := rdb.XLen(ctx, base+"log").Val(); n != 2 {
		t.Errorf("log holds %d messages after a refused PublishIf, want 2", n)
	}
	next := &pubsub.Message{Topics: []string{"a"}, Data: "5"}
	if _, err := b.PublishIf(ctx, tail, next); err != nil {
		t.Fatalf("PublishIf with the tail %v: %v", tail, err)
	}
	msgs, tail, err = b.ReadTopic(ctx, "a", pubsub.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if tail != next.Pos || len(msgs) != 2 || msgs[0].Pos != batch[4].Pos || msgs[1].Pos != next.Pos {
		t.Fatalf("ReadTopic after PublishIf: %d messages, tail %v; want %v and %v", len(msgs), tail, batch[4].Pos, next.Pos)
	}
}
