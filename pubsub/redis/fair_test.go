package redis_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/redis"
)

func rawClient(t *testing.T) *goredis.Client {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// TestMessageOfSeveralTopics: a message of two topics is in both topics'
// lists; one topic's count limit evicts it from that topic only, and a
// read of both topics returns it once while the other holds it.
func TestMessageOfSeveralTopics(t *testing.T) {
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
	read := func(topics ...string) pubsub.Snapshot {
		t.Helper()
		snap, err := b.Read(ctx, pubsub.Query{Topics: topics, After: &pubsub.Position{Epoch: b.Epoch()}})
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	data := func(snap pubsub.Snapshot) string {
		var out []string
		for _, m := range snap.Events {
			out = append(out, m.Data)
		}
		return strings.Join(out, " ")
	}
	rdb := rawClient(t)
	base := "{" + p + "}:" + b.Epoch() + ":"
	pub("both", "a", "b")
	if snap := read("a", "b"); data(snap) != "both" || snap.Truncated {
		t.Errorf("a and b: %q, truncated %v; want the message once", data(snap), snap.Truncated)
	}
	pub("a1", "a")
	pub("a2", "a") // both left a's history, b still holds it
	if snap := read("a"); data(snap) != "a1 a2" || !snap.Truncated {
		t.Errorf("a: %q, truncated %v; want a1 a2, truncated", data(snap), snap.Truncated)
	}
	if snap := read("b"); data(snap) != "both" || snap.Truncated {
		t.Errorf("b: %q, truncated %v; want both", data(snap), snap.Truncated)
	}
	if snap := read("a", "b"); data(snap) != "both a1 a2" || !snap.Truncated {
		t.Errorf("a and b: %q, truncated %v; want both a1 a2, truncated (a lost it)", data(snap), snap.Truncated)
	}
	if n := rdb.LLen(ctx, base+"t:a").Val(); n != 2 {
		t.Errorf("a's list holds %d items, want 2", n)
	}
}

// TestLayout1IsNotRead: a log of layout 1 under the same prefix (an earlier
// Herald's) is left alone: the broker starts its own epoch, so that
// clients resuming from the old one get a reset, and warns once.
func TestLayout1IsNotRead(t *testing.T) {
	needRedis(t)
	p := uniquePrefix(t)
	ctx := context.Background()
	rdb := rawClient(t)
	old := pubsub.NewEpoch()
	if err := rdb.HSet(ctx, "{"+p+"}:meta", "epoch", old, "seq", 7).Err(); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	b, err := redis.Open(ctx, "redis://"+redisAddr()+"/0", &redis.Options{Prefix: p, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Epoch() == old {
		t.Fatalf("the broker took layout 1's epoch %q", old)
	}
	if !strings.Contains(logs.String(), "layout 1") {
		t.Errorf("no warning about the layout-1 log; logs:\n%s", logs.String())
	}
	snap, err := b.Read(ctx, pubsub.Query{Topics: []string{"x"}, After: &pubsub.Position{Epoch: old, Offset: 7}})
	if err != nil {
		t.Fatal(err)
	}
	if !snap.EpochChanged {
		t.Error("a resume from layout 1's epoch is not reported as an epoch change")
	}
	if n, _ := rdb.HGet(ctx, "{"+p+"}:meta", "seq").Int(); n != 7 {
		t.Errorf("layout 1's meta changed: seq %d", n)
	}
}
