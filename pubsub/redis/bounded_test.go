package redis_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/redis"
)

// bigBacklog publishes n small messages to topic a in one batch.
func bigBacklog(t *testing.T, b *redis.Broker, n int) *pubsub.Message {
	t.Helper()
	batch := make([]*pubsub.Message, n)
	for i := range batch {
		batch[i] = &pubsub.Message{Topics: []string{"a"}, Data: fmt.Sprint(i)}
	}
	if got, err := b.PublishBatch(context.Background(), batch); got != n || err != nil {
		t.Fatalf("PublishBatch = %d, %v", got, err)
	}
	return batch[n-1]
}

// TestAgeSweepIsBounded: one sweep call drops a bounded number of items
// (a topic's whole old backlog, in one LPOP into the script's memory, could
// be millions of items when MaxAge is first set or lowered: Redis blocked
// for that long, and its memory doubled), reporting that more is to do;
// calls repeated finish the work with exact bookkeeping.
func TestAgeSweepIsBounded(t *testing.T) {
	needRedis(t)
	p := uniquePrefix(t)
	ctx := context.Background()
	b, err := redis.Open(ctx, "redis://"+redisAddr()+"/0", &redis.Options{Prefix: p, SweepInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n = 25000
	last := bigBacklog(t, b, n)
	rdb := rawClient(t)
	testkit.WaitFor(t, "the backlog to be older than 1 ms", func() bool {
		now, err := rdb.Time(ctx).Result()
		return err == nil && now.UnixMilli() > last.Time.UnixMilli()+1
	})
	common, err1 := os.ReadFile("lua/common.lua")
	sweep, err2 := os.ReadFile("lua/sweep.lua")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	src := string(common) + "\n" + string(sweep)
	base := "{" + p + "}:" + b.Epoch() + ":"
	keys := []string{"{" + p + "}:v2:meta", base + "wm", base + "topics", base + "ret", base + "fin", base + "sizes", base + "fair", base + "pend"}
	more, err := rdb.Eval(ctx, src, keys, b.Epoch(), 1, 0, 500, base+"t:").Int()
	if err != nil {
		t.Fatal(err)
	}
	if left := rdb.LLen(ctx, base+"t:a").Val(); more != 1 || left == 0 {
		t.Fatalf("one sweep call: more %d, %d items left of %d; want a part dropped and more to do", more, left, n)
	}
	for i := 0; more == 1; i++ {
		if i == 100 {
			t.Fatal("the sweep does not finish")
		}
		if more, err = rdb.Eval(ctx, src, keys, b.Epoch(), 1, 0, 500, base+"t:").Int(); err != nil {
			t.Fatal(err)
		}
	}
	if left := rdb.LLen(ctx, base+"t:a").Val(); left != 0 {
		t.Errorf("%d items left after the sweep", left)
	}
	if v := rdb.HGet(ctx, "{"+p+"}:v2:meta", "bytes").Val(); v != "0" {
		t.Errorf("meta bytes %s after the sweep, want 0", v)
	}
	snap, err := b.Read(ctx, pubsub.Query{Topics: []string{"a"}, After: &pubsub.Position{Epoch: b.Epoch(), Offset: 5}})
	if err != nil || !snap.Truncated || len(snap.Events) != 0 {
		t.Errorf("resume after the sweep: %d events, truncated %v, %v; want none, truncated", len(snap.Events), snap.Truncated, err)
	}
}

// TestCountLimitLoweredIsBounded: with a count limit set (or lowered) on a
// long list, a publish pops a bounded number of its oldest items, not the
// whole excess at once; reads are exact meanwhile, and later publishes
// bring the list back to the limit.
func TestCountLimitLoweredIsBounded(t *testing.T) {
	needRedis(t)
	p := uniquePrefix(t)
	ctx := context.Background()
	b := open(t, p, pubsub.Retention{})
	const n = 25000
	bigBacklog(t, b, n)
	b.Close()
	const limit = 10
	b = open(t, p, pubsub.Retention{MaxEvents: limit})
	defer b.Close()
	rdb := rawClient(t)
	list := "{" + p + "}:" + b.Epoch() + ":t:a"
	var last *pubsub.Message
	pub := func() {
		t.Helper()
		last = &pubsub.Message{Topics: []string{"a"}, Data: "new"}
		if _, err := b.Publish(ctx, last); err != nil {
			t.Fatal(err)
		}
	}
	pub()
	if left := rdb.LLen(ctx, list).Val(); left <= limit+1 {
		t.Fatalf("one publish popped the list from %d to %d items at once", n+1, left)
	}
	snap, err := b.Read(ctx, pubsub.Query{Topics: []string{"a"}, After: &pubsub.Position{Epoch: b.Epoch(), Offset: last.Pos.Offset - limit}})
	if err != nil || snap.Truncated || len(snap.Events) != limit {
		t.Fatalf("resume within the limit: %d events, truncated %v, %v", len(snap.Events), snap.Truncated, err)
	}
	snap, err = b.Read(ctx, pubsub.Query{Topics: []string{"a"}, After: &pubsub.Position{Epoch: b.Epoch(), Offset: last.Pos.Offset - limit - 1}})
	if err != nil || !snap.Truncated || len(snap.Events) != limit {
		t.Fatalf("resume before the limit: %d events, truncated %v, %v", len(snap.Events), snap.Truncated, err)
	}
	for i := 0; rdb.LLen(ctx, list).Val() > limit+1; i++ {
		if i == 100 {
			t.Fatalf("the list still holds %d items", rdb.LLen(ctx, list).Val())
		}
		pub()
	}
	bytes := rdb.HGet(ctx, "{"+p+"}:v2:meta", "bytes").Val()
	held := 0
	for _, it := range rdb.LRange(ctx, list, 0, -1).Val() {
		held += len(it)
	}
	if bytes != fmt.Sprint(held) {
		t.Errorf("meta bytes %s, want %d", bytes, held)
	}
}
