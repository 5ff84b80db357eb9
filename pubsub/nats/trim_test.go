package nats_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/nats"
)

// TestTrimmerCountsExistingHistory: a node that starts with a byte bound on
// a stream that already holds more counts what it holds and cuts it
// fairly: the noisy topic, not the quiet one.
func TestTrimmerCountsExistingHistory(t *testing.T) {
	needNATS(t)
	name := uniqueStream(t, natsURL())
	b := open(t, natsURL(), name, pubsub.Retention{})
	ctx := context.Background()
	quiet := &pubsub.Message{Topics: []string{"quiet"}, Data: "the only event"}
	if _, err := b.Publish(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	chunk := strings.Repeat("n", 4<<10)
	var last *pubsub.Message
	for i := range 20 {
		last = &pubsub.Message{Topics: []string{"noisy"}, Data: fmt.Sprint(i, chunk)}
		if _, err := b.Publish(ctx, last); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()

	b = open(t, natsURL(), name, pubsub.Retention{MaxBytes: 32 << 10})
	defer b.Close()
	read := func(topic string) pubsub.Snapshot {
		t.Helper()
		snap, err := b.Read(ctx, pubsub.Query{Topics: []string{topic}, After: &pubsub.Position{Epoch: b.Epoch()}})
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	held := -1
	testkit.WaitWithin(t, 10*time.Second, "the trimmer to bring the noisy topic under the byte bound", func() bool {
		snap := read("noisy")
		if n := len(snap.Events); n != held {
			held = n
			t.Logf("the noisy topic holds %d events", held) // shown if the wait fails
		}
		if held == 0 || held > 8 {
			return false
		}
		if !snap.Truncated || snap.Events[held-1].Pos != last.Pos {
			t.Fatalf("noisy topic: %d events %v, truncated %v; want its newest, truncated", held, snap.Events[0].Pos, snap.Truncated)
		}
		return true
	})
	if snap := read("quiet"); len(snap.Events) != 1 || snap.Truncated {
		t.Fatalf("quiet topic: %d events, truncated %v; want its event", len(snap.Events), snap.Truncated)
	}
}

// consumers returns how many consumers the stream has.
func consumers(t *testing.T, stream string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return openStream(t, ctx, stream).CachedInfo().State.Consumers
}

// openStream looks up stream on a connection of its own, closed when the
// test ends.
func openStream(t *testing.T, ctx context.Context, stream string) jetstream.Stream {
	t.Helper()
	nc, err := natsgo.Connect(natsURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestTrimmerSleepsBelowHalfTheBound: a node with a byte bound does not
// follow the stream (no consumer, no server CPU per message) while the
// stream holds less than half the bound; when another node's publishes
// bring it there, the sleeping trimmer notices by itself, follows the
// stream from its start and keeps the bound fairly.
func TestTrimmerSleepsBelowHalfTheBound(t *testing.T) {
	needNATS(t)
	const bound = 256 << 10
	name := uniqueStream(t, natsURL())
	a := open(t, natsURL(), name, pubsub.Retention{MaxBytes: bound})
	defer a.Close()
	ctx := context.Background()
	quiet := &pubsub.Message{Topics: []string{"quiet"}, Data: "the only event"}
	if _, err := a.Publish(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := a.Publish(ctx, &pubsub.Message{Topics: []string{"small"}, Data: fmt.Sprint("small ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	_, looked, _ := nats.TrimmerState(a)
	testkit.WaitWithin(t, 10*time.Second, "the trimmer to look at the stream after the publishes", func() bool {
		_, n, _ := nats.TrimmerState(a)
		return n > looked
	})
	if awake, _, _ := nats.TrimmerState(a); awake {
		t.Fatal("the trimmer follows a stream that holds far less than half the bound")
	}
	if n := consumers(t, name); n != 0 {
		t.Fatalf("the stream has %d consumers below half the bound, want 0", n)
	}

	// Another node (no bound of its own, so no trimmer) fills the stream.
	c := open(t, natsURL(), name, pubsub.Retention{})
	defer c.Close()
	chunk := strings.Repeat("n", 8<<10)
	var last *pubsub.Message
	publishNoisy := func(n int) {
		for i := range n {
			last = &pubsub.Message{Topics: []string{"noisy"}, Data: fmt.Sprint(i, chunk)}
			if _, err := c.Publish(ctx, last); err != nil {
				t.Fatal(err)
			}
		}
	}
	publishNoisy(20) // 160 KiB: over half the bound
	testkit.WaitWithin(t, 10*time.Second, "the sleeping trimmer to wake on another node's publishes", func() bool {
		awake, _, _ := nats.TrimmerState(a)
		return awake
	})
	testkit.WaitWithin(t, 10*time.Second, "the trimmer's consumer", func() bool { return consumers(t, name) == 1 })
	publishNoisy(40) // 480 KiB in all: over the bound
	testkit.WaitWithin(t, 10*time.Second, "the trimmer to bring the noisy topic under the bound", func() bool {
		snap, err := a.Read(ctx, pubsub.Query{Topics: []string{"noisy"}, After: &pubsub.Position{Epoch: a.Epoch()}})
		if err != nil {
			t.Fatal(err)
		}
		size := 0
		for _, m := range snap.Events {
			size += m.Size()
		}
		return size <= bound && snap.Truncated && len(snap.Events) > 0 && snap.Events[len(snap.Events)-1].Pos == last.Pos
	})
	snap, err := a.Read(ctx, pubsub.Query{Topics: []string{"quiet"}, After: &pubsub.Position{Epoch: a.Epoch()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Events) != 1 || snap.Truncated {
		t.Fatalf("quiet topic: %d events, truncated %v; want its event", len(snap.Events), snap.Truncated)
	}
}

// TestTrimmerLeaseHandover: of two nodes with a byte bound on one stream,
// one trims (one consumer follows the stream, not one per node); when it
// dies without giving the lease up, the other takes it over, reads the
// stream from its start and keeps the bound.
func TestTrimmerLeaseHandover(t *testing.T) {
	needNATS(t)
	const bound = 64 << 10
	name := uniqueStream(t, natsURL())
	ctx := context.Background()
	node := func() (*nats.Broker, *natsgo.Conn) {
		nc, err := natsgo.Connect(natsURL())
		if err != nil {
			t.Fatal(err)
		}
		b, err := nats.New(ctx, nc, &nats.Options{Stream: name, Retention: pubsub.Retention{MaxBytes: bound}})
		if err != nil {
			t.Fatal(err)
		}
		return b, nc
	}
	a, anc := node()
	c, cnc := node()
	defer func() { a.Close(); anc.Close(); c.Close(); cnc.Close() }()
	var holder, other *nats.Broker
	var holderConn *natsgo.Conn
	testkit.WaitWithin(t, 10*time.Second, "one node to hold the trimmer's lease", func() bool {
		switch {
		case nats.TrimmerHolds(a):
			holder, holderConn, other = a, anc, c
		case nats.TrimmerHolds(c):
			holder, holderConn, other = c, cnc, a
		}
		return holder != nil
	})

	quiet := &pubsub.Message{Topics: []string{"quiet"}, Data: "the only event"}
	if _, err := other.Publish(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	chunk := strings.Repeat("n", 4<<10)
	var last *pubsub.Message
	publishNoisy := func(b *nats.Broker, n int) {
		for i := range n {
			last = &pubsub.Message{Topics: []string{"noisy"}, Data: fmt.Sprint(i, chunk)}
			if _, err := b.Publish(ctx, last); err != nil {
				t.Fatal(err)
			}
		}
	}
	underBound := func(b *nats.Broker) bool {
		snap, err := b.Read(ctx, pubsub.Query{Topics: []string{"noisy"}, After: &pubsub.Position{Epoch: b.Epoch()}})
		if err != nil {
			t.Fatal(err)
		}
		size := 0
		for _, m := range snap.Events {
			size += m.Size()
		}
		return size <= bound && snap.Truncated && len(snap.Events) > 0 && snap.Events[len(snap.Events)-1].Pos == last.Pos
	}
	publishNoisy(other, 40) // 160 KiB
	testkit.WaitWithin(t, 10*time.Second, "the holder to trim", func() bool { return underBound(other) })
	if awake, _, _ := nats.TrimmerState(other); awake || nats.TrimmerHolds(other) {
		t.Fatal("the node without the lease follows the stream too")
	}
	if n := consumers(t, name); n != 1 {
		t.Fatalf("the stream has %d consumers, want 1 (the holder's trimmer)", n)
	}

	// The holder dies: its connection goes, its lease is not given up.
	holderConn.Close()
	testkit.WaitWithin(t, 15*time.Second, "the other node to take the lease over", func() bool {
		return nats.TrimmerHolds(other)
	})
	publishNoisy(other, 40)
	testkit.WaitWithin(t, 10*time.Second, "the new holder to keep the bound", func() bool { return underBound(other) })
	snap, err := other.Read(ctx, pubsub.Query{Topics: []string{"quiet"}, After: &pubsub.Position{Epoch: other.Epoch()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Events) != 1 || snap.Truncated {
		t.Fatalf("quiet topic: %d events, truncated %v; want its event", len(snap.Events), snap.Truncated)
	}
}

// TestTrimmerLeaseGivenUpOnClose: a node that closes gives its lease up
// (deletes it), so that another takes it over at its next look rather
// than after the lease's TTL.
func TestTrimmerLeaseGivenUpOnClose(t *testing.T) {
	needNATS(t)
	name := uniqueStream(t, natsURL())
	a := open(t, natsURL(), name, pubsub.Retention{MaxBytes: 1 << 20})
	testkit.WaitWithin(t, 10*time.Second, "the first node to hold the lease", func() bool { return nats.TrimmerHolds(a) })
	nc, err := natsgo.Connect(natsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, name+"_state")
	if err != nil {
		t.Fatal(err)
	}
	held, err := kv.Get(ctx, "lease.trimmer")
	if err != nil {
		t.Fatalf("the lease's key: %v", err)
	}
	c := open(t, natsURL(), name, pubsub.Retention{MaxBytes: 1 << 20})
	defer c.Close()
	if nats.TrimmerHolds(c) {
		t.Fatal("two nodes hold the lease")
	}
	a.Close()
	if nats.TrimmerHolds(a) {
		t.Fatal("a closed node still holds the lease")
	}
	// The second node cannot have taken a lease that was not given up
	// yet: that takes the TTL (3 s) of not seeing it renewed.
	if e, err := kv.Get(ctx, "lease.trimmer"); err == nil && string(e.Value()) == string(held.Value()) {
		t.Fatalf("the closed node's lease is still in the bucket (revision %d)", e.Revision())
	} else if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatal(err)
	}
	start := time.Now()
	testkit.WaitWithin(t, 10*time.Second, "the second node to take the lease", func() bool { return nats.TrimmerHolds(c) })
	t.Logf("taken over %v after the holder closed", time.Since(start).Round(time.Millisecond))
}
