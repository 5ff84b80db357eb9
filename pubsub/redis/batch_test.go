package redis_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

// TestCountLimitByTenths: a topic's list may hold up to a tenth more than
// the count limit (the oldest extra items count as evicted: reads, the
// tail and Topics leave them out), and is popped back to the limit once it
// holds that tenth, with the bytes (the items' length) and the eviction
// mark of what left.
func TestCountLimitByTenths(t *testing.T) {
	needRedis(t)
	p := uniquePrefix(t)
	const limit = 20 // a tenth: 2
	b := open(t, p, pubsub.Retention{MaxEvents: limit})
	defer b.Close()
	ctx := context.Background()
	rdb := rawClient(t)
	list := "{" + p + "}:" + b.Epoch() + ":t:a"
	var all []*pubsub.Message
	publish := func(n int) {
		t.Helper()
		var batch []*pubsub.Message
		for range n {
			batch = append(batch, &pubsub.Message{Topics: []string{"a"}, Data: fmt.Sprint(len(all) + len(batch))})
		}
		if got, err := b.PublishBatch(ctx, batch); got != n || err != nil {
			t.Fatalf("PublishBatch = %d, %v", got, err)
		}
		all = append(all, batch...)
	}
	bytes := func() int {
		v, _ := strconv.Atoi(rdb.HGet(ctx, "{"+p+"}:v2:meta", "bytes").Val())
		return v
	}
	// held is the bytes of the list's items: what history counts.
	held := func() int {
		n := 0
		for _, it := range rdb.LRange(ctx, list, 0, -1).Val() {
			n += len(it)
		}
		return n
	}
	// check: the list holds n items, history the last limit messages, and
	// a resume from just before the oldest held is exact while one from
	// before that is truncated.
	check := func(n int) {
		t.Helper()
		if got := rdb.LLen(ctx, list).Val(); got != int64(n) {
			t.Errorf("the list holds %d items, want %d", got, n)
		}
		if got, want := bytes(), held(); got != want {
			t.Errorf("meta bytes %d, want %d (the list's items)", got, want)
		}
		first := all[len(all)-limit]
		snap, err := b.Read(ctx, pubsub.Query{Topics: []string{"a"}, After: &pubsub.Position{Epoch: b.Epoch(), Offset: first.Pos.Offset - 1}})
		if err != nil {
			t.Fatal(err)
		}
		if snap.Truncated || len(snap.Events) != limit || snap.Events[0].Data != first.Data {
			t.Errorf("resume before the oldest held: %d events, truncated %v; want %d from %q", len(snap.Events), snap.Truncated, limit, first.Data)
		}
		before := all[len(all)-limit-1]
		snap, err = b.Read(ctx, pubsub.Query{Topics: []string{"a"}, After: &pubsub.Position{Epoch: b.Epoch(), Offset: before.Pos.Offset - 1}})
		if err != nil {
			t.Fatal(err)
		}
		if !snap.Truncated || len(snap.Events) != limit {
			t.Errorf("resume before an evicted one: %d events, truncated %v; want %d, truncated", len(snap.Events), snap.Truncated, limit)
		}
		msgs, _, err := b.ReadTopic(ctx, "a", pubsub.Position{}, 0)
		if err != nil || len(msgs) != limit || msgs[0].Pos != first.Pos {
			t.Errorf("ReadTopic: %d messages, %v; want %d from %v", len(msgs), err, limit, first.Pos)
		}
		topics, err := b.Topics(ctx)
		if err != nil || len(topics) != 1 || topics[0].Messages != limit {
			t.Errorf("Topics: %+v, %v; want a with %d messages", topics, err, limit)
		}
	}
	publish(limit + 1)
	check(limit + 1) // one extra: kept, counted as evicted
	publish(1)
	check(limit) // a tenth over: popped back to the limit
	publish(limit + 5)
	check(limit)
}
