package redis_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

// TestBatchEvictsAtTheNextPublish: messages that a batch's count limit
// evicts while publishing them leave their topic's history at once, stay
// in the log (the listeners have not read them) with their bytes counted
// out, and leave the log at the next publish.
func TestBatchEvictsAtTheNextPublish(t *testing.T) {
	needRedis(t)
	p := uniquePrefix(t)
	b := open(t, p, pubsub.Retention{MaxEvents: 2})
	defer b.Close()
	ctx := context.Background()
	rdb := rawClient(t)
	base := "{" + p + "}:" + b.Epoch() + ":"
	var batch []*pubsub.Message
	for i := range 10 {
		batch = append(batch, &pubsub.Message{Topics: []string{"a"}, Data: fmt.Sprint(i)})
	}
	if n, err := b.PublishBatch(ctx, batch); n != 10 || err != nil {
		t.Fatalf("PublishBatch = %d, %v", n, err)
	}
	if n := rdb.XLen(ctx, base+"t:a").Val(); n != 2 {
		t.Errorf("topic index holds %d entries, want 2", n)
	}
	if n := rdb.XLen(ctx, base+"log").Val(); n != 10 {
		t.Errorf("log holds %d messages right after the batch, want all 10", n)
	}
	if n := rdb.LLen(ctx, base+"dead").Val(); n != 8 {
		t.Errorf("dead list holds %d offsets, want 8", n)
	}
	bytes := func() int {
		v, _ := strconv.Atoi(rdb.HGet(ctx, "{"+p+"}:meta", "bytes").Val())
		return v
	}
	want := batch[8].Size() + batch[9].Size() - 2*len(b.Epoch()) // sized before they had a position
	if got := bytes(); got != want {
		t.Errorf("meta bytes %d after the batch, want %d (the two messages held)", got, want)
	}
	if _, err := b.Publish(ctx, &pubsub.Message{Topics: []string{"b"}, Data: "next"}); err != nil {
		t.Fatal(err)
	}
	if n := rdb.XLen(ctx, base+"log").Val(); n != 3 {
		t.Errorf("log holds %d messages after the next publish, want 3", n)
	}
	if n := rdb.Exists(ctx, base+"dead").Val(); n != 0 {
		t.Error("dead list still exists after the next publish")
	}
}
