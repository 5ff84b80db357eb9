package redis_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

// TestConditionalWithExtraItems: a topic's list holding items over the
// count limit (evicted, not popped yet) does not change its tail: a
// PublishIf naming an evicted message, or none, conflicts; the tail
// appends, and ReadTopic leaves the extra items out.
func TestConditionalWithExtraItems(t *testing.T) {
	needRedis(t)
	p := uniquePrefix(t)
	b := open(t, p, pubsub.Retention{MaxEvents: 20})
	defer b.Close()
	ctx := context.Background()
	var batch []*pubsub.Message
	for i := range 21 {
		batch = append(batch, &pubsub.Message{Topics: []string{"a"}, Data: fmt.Sprint(i)})
	}
	if n, err := b.PublishBatch(ctx, batch); n != 21 || err != nil {
		t.Fatalf("PublishBatch = %d, %v", n, err)
	}
	msgs, tail, err := b.ReadTopic(ctx, "a", pubsub.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if tail != batch[20].Pos || len(msgs) != 20 || msgs[0].Pos != batch[1].Pos {
		t.Fatalf("ReadTopic: %d messages, tail %v; want 20 from %v, tail %v", len(msgs), tail, batch[1].Pos, batch[20].Pos)
	}
	for _, stale := range []pubsub.Position{batch[0].Pos, batch[19].Pos, {}} {
		_, err := b.PublishIf(ctx, stale, &pubsub.Message{Topics: []string{"a"}, Data: "refused"})
		if !errors.Is(err, pubsub.ErrConflict) {
			t.Fatalf("PublishIf with tail %v (the tail is %v): %v, want ErrConflict", stale, tail, err)
		}
	}
	next := &pubsub.Message{Topics: []string{"a"}, Data: "21"}
	if _, err := b.PublishIf(ctx, tail, next); err != nil {
		t.Fatalf("PublishIf with the tail %v: %v", tail, err)
	}
	msgs, tail, err = b.ReadTopic(ctx, "a", batch[10].Pos, 5)
	if err != nil {
		t.Fatal(err)
	}
	if tail != next.Pos || len(msgs) != 5 || msgs[0].Pos != batch[11].Pos {
		t.Fatalf("ReadTopic after PublishIf: %d messages, tail %v; want 5 from %v, tail %v", len(msgs), tail, batch[11].Pos, next.Pos)
	}
}
