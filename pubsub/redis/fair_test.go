package redis_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/pubsub"
)

func rawClient(t *testing.T) *goredis.Client {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestMaxEventsFreesTheLog: a message that every topic's count limit has
// dropped leaves the log (and the byte count), and one that a topic still
// holds stays in it.
func TestMaxEventsFreesTheLog(t *testing.T) {
	needRedis(t)
	p := uniquePrefix(t)
	b := open(t, p, pubsub.Retention{MaxEvents: 2})
	defer b.Close()
	ctx := context.Background()
	pub := func(data string, topics ...string) *pubsub.Message {
		t.Helper()
		m := &pubsub.Message{Topics: topics, Data: data}
		if _, err := b.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	rdb := rawClient(t)
	base := "{" + p + "}:" + b.Epoch() + ":"
	inLog := func(m *pubsub.Message) bool {
		t.Helper()
		n, err := rdb.XRange(ctx, base+"log", fmt.Sprint(m.Pos.Offset, "-0"), fmt.Sprint(m.Pos.Offset, "-0")).Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(n) == 1
	}
	both := pub("both", "a", "b")
	pub("a1", "a")
	pub("a2", "a") // both left a's history, b still holds it
	if !inLog(both) {
		t.Fatal("a message that topic b still holds left the log")
	}
	pub("b1", "b")
	pub("b2", "b") // both left b's history too
	if inLog(both) {
		t.Fatal("a message no topic holds is still in the log")
	}
	if n := rdb.XLen(ctx, base+"log").Val(); n != 4 {
		t.Errorf("log holds %d messages, want 4 (two per topic)", n)
	}
	if n := rdb.HLen(ctx, base+"refs").Val(); n != 0 {
		t.Errorf("refs holds %d entries, want none", n)
	}
}

// TestFairBoundOnLegacyLog: a log written before topics counted their
// bytes is evicted oldest first by the byte bound until none of it is
// left; what follows is shared fairly.
func TestFairBoundOnLegacyLog(t *testing.T) {
	needRedis(t)
	p := uniquePrefix(t)
	b := open(t, p, pubsub.Retention{})
	ctx := context.Background()
	chunk := strings.Repeat("x", 4<<10)
	for i := range 20 {
		if _, err := b.Publish(ctx, &pubsub.Message{Topics: []string{"old"}, Data: fmt.Sprint(i, chunk)}); err != nil {
			t.Fatal(err)
		}
	}
	epoch := b.Epoch()
	b.Close()
	// As an older herald left it: no sizes, no fair set, no legacy mark.
	rdb := rawClient(t)
	base := "{" + p + "}:"
	if err := rdb.Del(ctx, base+epoch+":sizes", base+epoch+":fair", base+epoch+":refs").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HDel(ctx, base+"meta", "legacy").Err(); err != nil {
		t.Fatal(err)
	}

	const maxBytes = 32 << 10
	b = open(t, p, pubsub.Retention{MaxBytes: maxBytes})
	defer b.Close()
	quiet := &pubsub.Message{Topics: []string{"quiet"}, Data: "the only event"}
	if _, err := b.Publish(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := b.Publish(ctx, &pubsub.Message{Topics: []string{"noisy"}, Data: fmt.Sprint(i, chunk)}); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := rdb.HGet(ctx, base+"meta", "bytes").Int64(); n > maxBytes {
		t.Errorf("log holds %d bytes, bound %d", n, maxBytes)
	}
	read := func(topic string) pubsub.Snapshot {
		t.Helper()
		snap, err := b.Read(ctx, pubsub.Query{Topics: []string{topic}, After: &pubsub.Position{Epoch: epoch}})
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	if snap := read("old"); len(snap.Events) != 0 || !snap.Truncated {
		t.Errorf("legacy topic: %d events, truncated %v; want all evicted", len(snap.Events), snap.Truncated)
	}
	if snap := read("quiet"); len(snap.Events) != 1 || snap.Truncated {
		t.Errorf("quiet topic: %d events, truncated %v; want its event", len(snap.Events), snap.Truncated)
	}
	if snap := read("noisy"); len(snap.Events) == 0 || len(snap.Events) > 8 || !snap.Truncated {
		t.Errorf("noisy topic: %d events, truncated %v; want its newest few", len(snap.Events), snap.Truncated)
	}
}
