package redis_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
	"github.com/heraldpush/herald/pubsub/redis"
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

// TestGapAfterUndecodableEntry: after an undecodable live entry the
// listener cannot tell the next entry's offsets from the cursor; when the
// stream was trimmed past the entries right after it (the node stalled),
// the node must resync its subscribers again: they resynced at the
// undecodable entry, and the messages published since are not delivered.
// Without the trim (a large window) it resyncs them once.
func TestGapAfterUndecodableEntry(t *testing.T) {
	needRedis(t)
	t.Run("trimmed", func(t *testing.T) { testGapAfterUndecodable(t, 4<<10, 2) })
	t.Run("kept", func(t *testing.T) { testGapAfterUndecodable(t, 1<<20, 1) })
}

func testGapAfterUndecodable(t *testing.T, window int64, resyncs int) {
	p := uniquePrefix(t)
	openSmall := func() *redis.Broker {
		b, err := redis.Open(context.Background(), "redis://"+redisAddr()+"/0", &redis.Options{Prefix: p, LiveWindow: window})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pub := openSmall()
	defer pub.Close()
	sub := openSmall()
	defer sub.Close()
	ctx := context.Background()
	h := &stallOnEpoch{Listener: pubsubtest.NewListener(), gate: make(chan struct{}), blocked: make(chan struct{})}
	pubsubtest.Listen(t, sub, h)
	h.Settle(t)
	// An entry the listener cannot decode, where the next publish follows.
	addLiveEntry(t, p, pub.Epoch(), 100, "0", 0, "s", "?")
	<-h.blocked // the listener resyncs its subscribers, then stalls
	big := strings.Repeat("x", 1000)
	var last *pubsub.Message
	for range 40 {
		last = &pubsub.Message{Topics: []string{"g"}, Data: big}
		if _, err := pub.Publish(ctx, last); err != nil {
			t.Fatal(err)
		}
	}
	close(h.gate)
	h.Wait(t, "the last message", func() bool { return h.LastPos() == last.Pos })
	if n := len(h.Epochs()); n != resyncs {
		t.Fatalf("HandleEpoch called %d times, want %d", n, resyncs)
	}
}

// stallOnEpoch blocks in its first HandleEpoch until gate is closed.
type stallOnEpoch struct {
	*pubsubtest.Listener
	gate    chan struct{}
	blocked chan struct{}
	once    sync.Once
}

func (h *stallOnEpoch) HandleEpoch(e string) {
	h.Listener.HandleEpoch(e)
	h.once.Do(func() {
		close(h.blocked)
		<-h.gate
	})
}

// TestForeignLiveEntry: an entry on the live stream whose id publish.lua
// would not write ("<n>-5", added by hand or by another program) is
// undecodable: the listener resyncs its subscribers and reads on past it,
// rather than failing on it again and again (live delivery stopped).
func TestForeignLiveEntry(t *testing.T) {
	needRedis(t)
	p := uniquePrefix(t)
	b := open(t, p, pubsub.Retention{})
	defer b.Close()
	ctx := context.Background()
	h := pubsubtest.NewListener()
	pubsubtest.Listen(t, b, h)
	h.Settle(t)
	addLiveEntry(t, p, b.Epoch(), 100, "5", 100, "x", "y")
	m := &pubsub.Message{Topics: []string{"x"}, Data: "after"}
	if _, err := b.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	h.Wait(t, "the message after the foreign entry", func() bool { return h.LastPos() == m.Pos })
	if len(h.Epochs()) == 0 {
		t.Error("no resync (HandleEpoch) for the foreign entry")
	}
}

// TestPurgeAfterEpochChange: a node that has not seen the new epoch yet
// purges the topic in the new epoch (it was published to there), rather
// than returning success having purged nothing.
func TestPurgeAfterEpochChange(t *testing.T) {
	m := &pubsub.Message{Topics: []string{"x"}, Data: "new epoch", Retain: true}
	a, b := staleNode(t, m)
	ctx := context.Background()
	if err := b.Purge(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	snap, err := a.Read(ctx, pubsub.Query{Topics: []string{"x"}, After: &pubsub.Position{Epoch: m.Pos.Epoch}})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Events) != 0 || len(snap.Retained) != 0 {
		t.Fatalf("after Purge: %d events, %d retained; want none", len(snap.Events), len(snap.Retained))
	}
}

// TestConditionalOnStaleNode: a node that has not seen the new epoch yet
// takes a position of the new epoch (from another node) as current: it
// reads and appends after it, rather than reporting the epoch changed.
func TestConditionalOnStaleNode(t *testing.T) {
	m := &pubsub.Message{Topics: []string{"x"}, Data: "1"}
	_, b := staleNode(t, m)
	ctx := context.Background()
	msgs, tail, err := b.ReadTopic(ctx, "x", m.Pos, 0)
	if err != nil || len(msgs) != 0 || tail != m.Pos {
		t.Fatalf("ReadTopic after %v on the stale node: %d messages, tail %v, %v", m.Pos, len(msgs), tail, err)
	}
	if _, err := b.PublishIf(ctx, m.Pos, &pubsub.Message{Topics: []string{"x"}, Data: "2"}); err != nil {
		t.Fatalf("PublishIf after %v on the stale node: %v", m.Pos, err)
	}
}

// staleNode returns two nodes on one prefix after Redis lost the log: a
// published m in the new epoch; b, without a listener, still holds the old
// one (it learns of epochs from its calls). The test closes both.
func staleNode(t *testing.T, m *pubsub.Message) (a, b *redis.Broker) {
	t.Helper()
	needRedis(t)
	p := uniquePrefix(t)
	a = open(t, p, pubsub.Retention{})
	t.Cleanup(func() { a.Close() })
	b = open(t, p, pubsub.Retention{})
	t.Cleanup(func() { b.Close() })
	old := b.Epoch()
	deleteKeys(t, p) // Redis lost the log
	if _, err := a.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if m.Pos.Epoch == old || b.Epoch() != old {
		t.Fatalf("epochs: message %q, node b %q, old %q", m.Pos.Epoch, b.Epoch(), old)
	}
	return a, b
}

// addLiveEntry adds an entry publish.lua did not write to the live stream
// of prefix p's epoch: its id is "<the live stream's bytes + ahead>-<seq>"
// and the bytes move on to it plus after, so that the next publish
// follows it.
func addLiveEntry(t *testing.T, p, epoch string, ahead uint64, seq string, after uint64, values ...any) {
	t.Helper()
	ctx := context.Background()
	rdb := rawClient(t)
	meta := "{" + p + "}:v2:meta"
	lb, err := rdb.HGet(ctx, meta, "lb").Uint64()
	if err != nil {
		t.Fatal(err)
	}
	live := "{" + p + "}:" + epoch + ":live"
	if err := rdb.XAdd(ctx, &goredis.XAddArgs{Stream: live, ID: fmt.Sprintf("%d-%s", lb+ahead, seq), Values: values}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, meta, "lb", lb+ahead+after).Err(); err != nil {
		t.Fatal(err)
	}
}
