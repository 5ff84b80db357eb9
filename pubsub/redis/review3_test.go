package redis_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
	"github.com/heraldpush/herald/pubsub/redis"
)

// sweepOnce runs sweep.lua once on b's log (its own sweeper idle), with
// max bytes maxBytes, and returns its answer.
func sweepOnce(t *testing.T, p string, b *redis.Broker, maxBytes int64) int {
	t.Helper()
	common, err1 := os.ReadFile("lua/common.lua")
	sweep, err2 := os.ReadFile("lua/sweep.lua")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	base := "{" + p + "}:" + b.Epoch() + ":"
	keys := []string{"{" + p + "}:v2:meta", base + "wm", base + "topics", base + "ret", base + "fin", base + "sizes", base + "fair", base + "pend"}
	more, err := rawClient(t).Eval(context.Background(), string(common)+"\n"+string(sweep), keys, b.Epoch(), 0, maxBytes, 500, base+"t:").Int()
	if err != nil {
		t.Fatal(err)
	}
	return more
}

// TestByteBoundKeepsNewestOf65: the byte bound never evicts a topic's
// newest message, also when the topic holds exactly 65 messages (the
// sweep looks at its 65 oldest items and took all 65 for evictable).
func TestByteBoundKeepsNewestOf65(t *testing.T) {
	needRedis(t)
	for _, n := range []int{2, 64, 65, 66, 130} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p := uniquePrefix(t)
			ctx := context.Background()
			b, err := redis.Open(ctx, "redis://"+redisAddr()+"/0", &redis.Options{Prefix: p, SweepInterval: time.Hour, Retention: pubsub.Retention{MaxBytes: 1}})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			last := bigBacklog(t, b, n)
			for i := 0; sweepOnce(t, p, b, 1) == 1; i++ {
				if i == 100 {
					t.Fatal("the sweep does not finish")
				}
			}
			list := "{" + p + "}:" + b.Epoch() + ":t:a"
			if left := rawClient(t).LLen(ctx, list).Val(); left != 1 {
				t.Fatalf("%d items left of %d; want the newest", left, n)
			}
			_, tail, err := b.ReadTopic(ctx, "a", pubsub.Position{Epoch: b.Epoch()}, 0)
			if err != nil || tail.Offset != last.Pos.Offset {
				t.Fatalf("tail %v, %v; want %v", tail, err, last.Pos)
			}
			snap, err := b.Read(ctx, pubsub.Query{Topics: []string{"a"}, After: &pubsub.Position{Epoch: b.Epoch(), Offset: last.Pos.Offset - 2}})
			if err != nil || !snap.Truncated || len(snap.Events) != 1 {
				t.Errorf("resume before the evicted: %d events, truncated %v, %v; want 1, truncated", len(snap.Events), snap.Truncated, err)
			}
		})
	}
}

// TestOffsetDigits: an item's offset, written from its hundreds and its
// last two digits, is the decimal offset (across 100s, 1000s, past 10^14
// and near 2^53), and publishers and readers agree on it.
func TestOffsetDigits(t *testing.T) {
	needRedis(t)
	ctx := context.Background()
	for _, seq := range []uint64{0, 97, 98, 99, 107, 108, 197, 998, 9997, 1e14 - 2, 1e15 + 95, 1<<53 - 10} {
		p := uniquePrefix(t)
		b := open(t, p, pubsub.Retention{})
		if err := rawClient(t).HSet(ctx, "{"+p+"}:v2:meta", "seq", seq).Err(); err != nil {
			t.Fatal(err)
		}
		batch := []*pubsub.Message{
			{Topics: []string{"a"}, Data: "1"},
			{Topics: []string{"a", "b"}, Data: "2"},
			{Topics: []string{"a"}, Data: "3", Retain: true},
			{Topics: []string{"b"}, Data: "4"},
			{Topics: []string{"a"}, Data: "5", ID: "x"},
		}
		if n, err := b.PublishBatch(ctx, batch); n != len(batch) || err != nil {
			t.Fatalf("seq %d: PublishBatch = %d, %v", seq, n, err)
		}
		var want []uint64
		for i, m := range batch {
			if m.Pos.Offset != seq+uint64(i)+1 {
				t.Errorf("seq %d: message %d at %d", seq, i, m.Pos.Offset)
			}
			if m.Topics[0] == "a" {
				want = append(want, m.Pos.Offset)
			}
		}
		got, _, err := b.ReadTopic(ctx, "a", pubsub.Position{Epoch: b.Epoch(), Offset: seq}, 0)
		if err != nil || len(got) != len(want) {
			t.Fatalf("seq %d: ReadTopic = %d, %v", seq, len(got), err)
		}
		for i, m := range got {
			if m.Pos.Offset != want[i] {
				t.Errorf("seq %d: read message %q at %d, want %d", seq, m.Data, m.Pos.Offset, want[i])
			}
		}
		b.Close()
	}
}

// TestMixedBatchPositions: a batch mixing compact and long forms, dedupe
// hits (of an earlier publish and within the batch) and a stop at a
// finished topic returns each message's position as history holds it.
func TestMixedBatchPositions(t *testing.T) {
	needRedis(t)
	ctx := context.Background()
	p := uniquePrefix(t)
	b := open(t, p, pubsub.Retention{})
	defer b.Close()
	h := pubsubtest.NewListener()
	pubsubtest.Listen(t, b, h)
	h.Settle(t)
	first := &pubsub.Message{Topics: []string{"c"}, Data: "first", ID: "d1"}
	if _, err := b.Publish(ctx, first); err != nil {
		t.Fatal(err)
	}
	batch := []*pubsub.Message{
		{Topics: []string{"a"}, Data: "1"},
		{Topics: []string{"a", "b"}, Data: "dup", ID: "d1"},
		{Topics: []string{"b", "a", "b"}, Data: "2", ID: "d2"},
		{Topics: []string{"b"}, Data: "3"},
		{Topics: []string{"a"}, Data: "dup2", ID: "d2"},
		{Topics: []string{"c"}, Data: "4", Final: true, Retain: true},
		{Topics: []string{"a"}, Data: "5"},
		{Topics: []string{"c", "a"}, Data: "6"},
		{Topics: []string{"a"}, Data: "7"},
	}
	n, err := b.PublishBatch(ctx, batch)
	if n != 7 || !errors.Is(err, pubsub.ErrTopicFinished) {
		t.Fatalf("PublishBatch = %d, %v; want 7, finished", n, err)
	}
	o := first.Pos.Offset
	want := []uint64{o + 1, o, o + 2, o + 3, o + 2, o + 4, o + 5}
	for i, w := range want {
		if batch[i].Pos.Offset != w {
			t.Errorf("message %d (%s) at %d, want %d", i, batch[i].Data, batch[i].Pos.Offset, w)
		}
	}
	snap, err := b.Read(ctx, pubsub.Query{Topics: []string{"a", "b", "c"}, After: &pubsub.Position{Epoch: b.Epoch()}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range snap.Events {
		got = append(got, fmt.Sprintf("%d:%s", m.Pos.Offset-o, m.Data))
	}
	if fmt.Sprint(got) != "[0:first 1:1 2:2 3:3 4:4 5:5]" {
		t.Errorf("history %v", got)
	}
	h.Wait(t, "the stored messages live", func() bool { return len(h.Messages()) >= 6 })
	got = nil
	for _, m := range h.Messages() {
		got = append(got, fmt.Sprintf("%d:%s", m.Pos.Offset-o, m.Data))
	}
	if fmt.Sprint(got) != "[0:first 1:1 2:2 3:3 4:4 5:5]" || len(h.Epochs()) != 0 {
		t.Errorf("live %v, epochs %v", got, h.Epochs())
	}
}

// TestByteBoundBookkeeping: after byte-bound sweeps over topics of
// different sizes (messages of several topics among them), every topic
// keeps its newest message, sizes and fair scores match the lists, the
// meta bytes match their sum, a quiet topic keeps its history while a
// noisy one leads, and a resume before a topic's oldest item held reports
// truncation.
func TestByteBoundBookkeeping(t *testing.T) {
	needRedis(t)
	ctx := context.Background()
	p := uniquePrefix(t)
	b, err := redis.Open(ctx, "redis://"+redisAddr()+"/0", &redis.Options{Prefix: p, SweepInterval: time.Hour, Retention: pubsub.Retention{MaxBytes: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rdb := rawClient(t)
	base := "{" + p + "}:" + b.Epoch() + ":"
	topics := []string{"noisy", "mid", "quiet", "x", "y"}
	var batch []*pubsub.Message
	for i := range 700 {
		ts := []string{"noisy"}
		switch {
		case i%7 == 0:
			ts = append(ts, "mid")
		case i%50 == 0:
			ts = []string{"quiet"}
		case i%3 == 0:
			ts = []string{topics[3+i%2], "mid"}
		}
		batch = append(batch, &pubsub.Message{Topics: ts, Data: fmt.Sprintf("%0*d", 10+i%40, i)})
	}
	if n, err := b.PublishBatch(ctx, batch); n != len(batch) || err != nil {
		t.Fatal(n, err)
	}
	first := map[string]uint64{}
	check := func(bound int64) {
		t.Helper()
		total := int64(0)
		for _, name := range topics {
			items := rdb.LRange(ctx, base+"t:"+name, 0, -1).Val()
			if len(items) == 0 {
				t.Fatalf("bound %d: %s lost its newest message", bound, name)
			}
			held := int64(0)
			for _, it := range items {
				held += int64(len(it))
			}
			total += held
			if s := rdb.HGet(ctx, base+"sizes", name).Val(); s != fmt.Sprint(held) {
				t.Errorf("bound %d: %s: sizes %s, lists %d", bound, name, s, held)
			}
			if f, err := rdb.ZScore(ctx, base+"fair", name).Result(); (err == nil || held-int64(len(items[len(items)-1])) > 0) && int64(f) != held-int64(len(items[len(items)-1])) {
				t.Errorf("bound %d: %s: fair %v (%v), want %d", bound, name, f, err, held-int64(len(items[len(items)-1])))
			}
			var oldest uint64
			fmt.Sscan(items[0], &oldest)
			snap, err := b.Read(ctx, pubsub.Query{Topics: []string{name}, After: &pubsub.Position{Epoch: b.Epoch(), Offset: oldest - 1}})
			if err != nil || len(snap.Events) != len(items) {
				t.Errorf("bound %d: %s: resume before its oldest: %d events, %v", bound, name, len(snap.Events), err)
			}
			if first[name] == 0 {
				first[name] = oldest
			}
			if oldest > first[name] {
				if snap, err := b.Read(ctx, pubsub.Query{Topics: []string{name}, After: &pubsub.Position{Epoch: b.Epoch(), Offset: 0}}); err != nil || !snap.Truncated {
					t.Errorf("bound %d: %s: resume from the start (oldest held %d): truncated %v, %v", bound, name, oldest, snap.Truncated, err)
				}
			}
		}
		if v := rdb.HGet(ctx, "{"+p+"}:v2:meta", "bytes").Val(); v != fmt.Sprint(total) {
			t.Errorf("bound %d: meta bytes %s, lists %d", bound, v, total)
		}
		if total > bound && rdb.ZCard(ctx, base+"fair").Val() > 0 && rdb.ZRevRangeWithScores(ctx, base+"fair", 0, 0).Val()[0].Score > 0 {
			t.Errorf("bound %d: %d bytes held with evictable bytes left", bound, total)
		}
	}
	sweepOnce(t, p, b, 1<<20)
	check(1 << 20)
	for _, bound := range []int64{40000, 20000, 8000, 3000, 1000, 1} {
		for i := 0; sweepOnce(t, p, b, bound) == 1; i++ {
			if i == 100 {
				t.Fatal("the sweep does not finish")
			}
		}
		check(bound)
		if bound == 20000 && rdb.LLen(ctx, base+"t:quiet").Val() != 12 {
			t.Errorf("the quiet topic lost history while noisy ones lead: %d items", rdb.LLen(ctx, base+"t:quiet").Val())
		}
	}
}
