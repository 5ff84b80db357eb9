package pubsubtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
)

// testConcurrency: many goroutines publish and read at once; every message
// gets its own position, each publisher's messages keep their order, and
// the log and the listener agree.
func (s *suite) testConcurrency(t *testing.T) {
	const (
		publishers = 8
		each       = 100
	)
	b := s.open(t, pubsub.Retention{})
	rec := s.listen(t, b, b)
	e := b.Epoch()
	per := make([][]*pubsub.Message, publishers)
	var wg sync.WaitGroup
	errs := make(chan error, publishers+2)
	stop := make(chan struct{})
	for g := range publishers {
		wg.Go(func() {
			for i := range each {
				m := msg(fmt.Sprintf("%d/%d", g, i), fmt.Sprintf("c%d", g), "call")
				pos, err := b.Publish(context.Background(), m)
				if err != nil {
					errs <- fmt.Errorf("publisher %d: %w", g, err)
					return
				}
				if pos.Epoch != e {
					errs <- fmt.Errorf("publisher %d: position %v of another epoch", g, pos)
					return
				}
				per[g] = append(per[g], m)
			}
		})
	}
	// Readers hammer snapshots meanwhile (for the race detector, and to
	// check that every snapshot is a prefix of the log).
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				snap, err := b.Read(context.Background(), pubsub.Query{Topics: []string{"call"}, After: at(e, 0)})
				if err != nil {
					errs <- fmt.Errorf("reader: %w", err)
					return
				}
				for i, m := range snap.Events {
					if m.Pos.Offset > snap.Head.Offset || i > 0 && m.Pos.Offset <= snap.Events[i-1].Pos.Offset {
						errs <- fmt.Errorf("reader: snapshot events %v not increasing up to Head %v", offsets(snap.Events), snap.Head)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var all []*pubsub.Message
	seen := make(map[uint64]bool)
	for g, ms := range per {
		for i, m := range ms {
			if seen[m.Pos.Offset] {
				t.Fatalf("offset %d given to two messages", m.Pos.Offset)
			}
			seen[m.Pos.Offset] = true
			if i > 0 && m.Pos.Offset <= ms[i-1].Pos.Offset {
				t.Fatalf("publisher %d: message %d at %v, not after %v", g, i, m.Pos, ms[i-1].Pos)
			}
		}
		all = append(all, ms...)
		snap := read(t, b, at(e, 0), fmt.Sprintf("c%d", g))
		checkMessages(t, fmt.Sprintf("Read c%d", g), snap.Events, ms)
	}
	sortByPos(all)
	snap := read(t, b, at(e, 0), "call")
	checkMessages(t, "Read call", snap.Events, all)
	if !rec.waitFor(t, all[len(all)-1].Pos, s.o.Wait) {
		t.Fatalf("Listen: last message not received within %v", s.o.Wait)
	}
	checkMessages(t, "Listen", rec.messages(), all)
}

// testHandOver: subscribers join while publishers publish, the way the hub
// joins them, and each ends with exactly the messages of its topics after
// its position.
func (s *suite) testHandOver(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	s.handOver(t, b, b)
}

// testPeerHandOver: the same, with the subscribers on another node.
func (s *suite) testPeerHandOver(t *testing.T) {
	if s.o.Peer == nil {
		t.Skip("no Options.Peer")
	}
	b := s.open(t, pubsub.Retention{})
	peer := s.o.Peer(t, b)
	t.Cleanup(func() { _ = peer.Close() })
	s.handOver(t, b, peer)
}

// handOver publishes on pub while simulated subscribers join on sub.
func (s *suite) handOver(t *testing.T, pub, sub pubsub.Broker) {
	const (
		publishers  = 4
		each        = 150
		subscribers = 40
		total       = publishers * each
	)
	topics := []string{"h0", "h1", "h2", "h3"}
	rec := s.listen(t, sub, pub)
	e := pub.Epoch()
	if sub.Epoch() != e {
		t.Fatalf("epochs differ: %q and %q", e, sub.Epoch())
	}

	var (
		mu        sync.Mutex
		published []*pubsub.Message
		lastAcked atomic.Uint64
		g         = newJoinGate(publishers, subscribers, total)
		wg        sync.WaitGroup
		errs      = make(chan error, publishers+subscribers)
	)
	for p := range publishers {
		wg.Go(func() {
			defer g.publisherDone()
			r := rand.New(rand.NewPCG(uint64(p), 1))
			for i := range each {
				// Subscribers join spread over the publishing, even on a
				// very fast broker: a publisher waits for the ones due.
				g.waitForSubscribers()
				ts := []string{topics[r.IntN(len(topics))]}
				if r.IntN(4) == 0 {
					if o := topics[r.IntN(len(topics))]; o != ts[0] {
						ts = append(ts, o)
					}
				}
				m := msg(fmt.Sprintf("%d/%d", p, i), ts...)
				pos, err := pub.Publish(context.Background(), m)
				if err != nil {
					errs <- fmt.Errorf("publisher %d: %w", p, err)
					return
				}
				mu.Lock()
				published = append(published, m)
				mu.Unlock()
				for {
					old := lastAcked.Load()
					if pos.Offset <= old || lastAcked.CompareAndSwap(old, pos.Offset) {
						break
					}
				}
				g.published()
			}
		})
	}

	type joined struct {
		topics []string
		after  uint64
		snap   pubsub.Snapshot
		live   *liveBuffer
	}
	subs := make([]*joined, subscribers)
	var subWG sync.WaitGroup
	for j := range subscribers {
		subWG.Go(func() {
			// Join spread over the publishing.
			defer g.joined()
			g.waitForPublished(j * total / subscribers)
			js := &joined{topics: []string{topics[j%len(topics)], topics[(j+1)%len(topics)]}}
			switch j % 4 {
			case 0:
				js.after = 0
			case 1:
				js.after = lastAcked.Load() / 2
			default:
				js.after = lastAcked.Load()
			}
			js.live = rec.register(js.topics)
			snap, err := sub.Read(context.Background(), pubsub.Query{Topics: js.topics, After: at(e, js.after)})
			if err != nil {
				errs <- fmt.Errorf("subscriber %d: Read: %w", j, err)
				return
			}
			js.snap = snap
			subs[j] = js
		})
	}
	wg.Wait()
	subWG.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sortByPos(published)
	if !rec.waitFor(t, published[len(published)-1].Pos, s.o.Wait) {
		t.Fatalf("Listen: last message not received within %v", s.o.Wait)
	}
	var overlapping, withLive int
	for j, js := range subs {
		live := rec.take(js.live)
		if len(live) > 0 && live[0].Pos.Offset <= js.snap.Head.Offset {
			overlapping++
		}
		if len(live) > 0 && live[len(live)-1].Pos.Offset > js.snap.Head.Offset {
			withLive++
		}
		if js.snap.Head.Offset < js.after {
			t.Errorf("subscriber %d: Head %v before its position %d", j, js.snap.Head, js.after)
		}
		if js.snap.Truncated || js.snap.EpochChanged {
			t.Errorf("subscriber %d: Truncated=%v EpochChanged=%v with unbounded history", j, js.snap.Truncated, js.snap.EpochChanged)
		}
		got := slices.Clone(js.snap.Events)
		for _, m := range js.snap.Events {
			if m.Pos.Offset <= js.after || m.Pos.Offset > js.snap.Head.Offset {
				t.Errorf("subscriber %d: snapshot event %v outside (%d, Head %v]", j, m.Pos, js.after, js.snap.Head)
			}
		}
		for _, m := range live {
			if m.Pos.Offset > js.snap.Head.Offset {
				got = append(got, m)
			}
		}
		var want []*pubsub.Message
		for _, m := range withTopic(published, js.topics...) {
			if m.Pos.Offset > js.after {
				want = append(want, m)
			}
		}
		if !slices.Equal(offsets(got), offsets(want)) {
			t.Errorf("subscriber %d (%v after %d, Head %v): got %d messages, want %d; first difference: %s",
				j, js.topics, js.after, js.snap.Head, len(got), len(want), firstDiff(offsets(got), offsets(want)))
		}
	}
	t.Logf("%d of %d subscribers got live messages after their snapshot; %d had live messages at or below Head to skip", withLive, subscribers, overlapping)
}

// joinGate spreads the subscribers of handOver over the publishing:
// subscriber j joins once j*total/subscribers messages are published, and
// no message is published before the subscribers due by then have joined
// (or given up), so each joins mid-stream however fast the broker is.
type joinGate struct {
	mu                  sync.Mutex
	cond                *sync.Cond
	nPublished, nJoined int // messages published, subscribers joined
	publishers          int // publishers still publishing
	subscribers, total  int
}

func newJoinGate(publishers, subscribers, total int) *joinGate {
	g := &joinGate{publishers: publishers, subscribers: subscribers, total: total}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// waitForSubscribers waits until the subscribers due at the number of
// messages published so far have joined.
func (g *joinGate) waitForSubscribers() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.nJoined < min(g.subscribers, (g.nPublished*g.subscribers+g.total-1)/g.total) {
		g.cond.Wait()
	}
}

// waitForPublished waits until n messages are published, or no publisher
// is left.
func (g *joinGate) waitForPublished(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.nPublished < n && g.publishers > 0 {
		g.cond.Wait()
	}
}

func (g *joinGate) update(f func()) {
	g.mu.Lock()
	f()
	g.mu.Unlock()
	g.cond.Broadcast()
}

func (g *joinGate) published()     { g.update(func() { g.nPublished++ }) }
func (g *joinGate) joined()        { g.update(func() { g.nJoined++ }) }
func (g *joinGate) publisherDone() { g.update(func() { g.publishers-- }) }

// firstDiff describes where two offset lists first differ.
func firstDiff(got, want []uint64) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("at index %d got offset %d, want %d", i, got[i], want[i])
		}
	}
	if len(got) > len(want) {
		return fmt.Sprintf("extra offsets %v", got[len(want):])
	}
	if len(want) > len(got) {
		return fmt.Sprintf("missing offsets %v", want[len(got):])
	}
	return "none"
}

// testPeerSharesLog: two nodes see one log: one epoch, one position space,
// history and live delivery of each other's messages.
func (s *suite) testPeerSharesLog(t *testing.T) {
	if s.o.Peer == nil {
		t.Skip("no Options.Peer")
	}
	a := s.open(t, pubsub.Retention{})
	b := s.o.Peer(t, a)
	t.Cleanup(func() { _ = b.Close() })
	if a.Epoch() != b.Epoch() {
		t.Fatalf("peer epoch %q, want %q", b.Epoch(), a.Epoch())
	}
	recA := s.listen(t, a, a)
	recB := s.listen(t, b, b)
	var (
		mu  sync.Mutex
		all []*pubsub.Message
		wg  sync.WaitGroup
	)
	errs := make(chan error, 2)
	for i, node := range []pubsub.Broker{a, b} {
		wg.Go(func() {
			for j := range 50 {
				m := msg(fmt.Sprintf("%d/%d", i, j), "peer")
				if _, err := node.Publish(context.Background(), m); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				all = append(all, m)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sortByPos(all)
	for i := 1; i < len(all); i++ {
		if all[i].Pos.Offset == all[i-1].Pos.Offset {
			t.Fatalf("offset %d given to two messages on different nodes", all[i].Pos.Offset)
		}
	}
	lastPos := all[len(all)-1].Pos
	for name, node := range map[string]pubsub.Broker{"a": a, "b": b} {
		snap := read(t, node, at(a.Epoch(), 0), "peer")
		checkMessages(t, "Read on "+name, snap.Events, all)
	}
	for name, rec := range map[string]*recorder{"a": recA, "b": recB} {
		if !rec.waitFor(t, lastPos, s.o.Wait) {
			t.Fatalf("Listen on %s: last message not received within %v", name, s.o.Wait)
		}
		checkMessages(t, "Listen on "+name, withTopic(rec.messages(), "peer"), all)
	}
}
