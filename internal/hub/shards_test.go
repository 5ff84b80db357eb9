package hub_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/shard"
)

// cluster is a sharded broker over memory logs, with hubs ("nodes") on it.
type cluster struct {
	t      testing.TB
	broker *shard.Broker
	n      int
}

func newCluster(t testing.TB, n int) *cluster {
	t.Helper()
	return &cluster{t: t, broker: testkit.ShardedBroker(t, n), n: n}
}

// node runs a hub over the cluster's broker until the test ends.
func (c *cluster) node(o *hub.Options) *hub.Hub {
	c.t.Helper()
	h := hub.New(c.broker, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	c.t.Cleanup(func() {
		h.Close()
		cancel()
		if err := <-done; err != nil {
			c.t.Errorf("Run: %v", err)
		}
	})
	return h
}

// topic returns a topic of shard k.
func (c *cluster) topic(k int, name string) string {
	for i := 0; ; i++ {
		if t := fmt.Sprintf("%s-%d", name, i); shard.Of(t, c.n) == k {
			return t
		}
	}
}

func subscribe(t testing.TB, h *hub.Hub, lastID string, topics ...string) *hub.Subscription {
	t.Helper()
	s, err := h.Subscribe(context.Background(), hub.Request{Topics: topics, LastEventID: lastID})
	if err != nil {
		t.Fatalf("subscribe %v from %q: %v", topics, lastID, err)
	}
	t.Cleanup(s.Close)
	return s
}

func publishTo(t testing.TB, h *hub.Hub, data string, topics ...string) *pubsub.Message {
	t.Helper()
	m := &pubsub.Message{Topics: topics, Data: data}
	if _, err := h.Publish(context.Background(), m); err != nil {
		t.Fatalf("publish %s: %v", data, err)
	}
	return m
}

// TestShardsOneShardKeepsIDs: a subscription whose topics are all on one
// shard gets the one-log ids "<epoch>-<offset>" of that shard, and the
// same (shared) event encodings as every other subscriber.
func TestShardsOneShardKeepsIDs(t *testing.T) {
	c := newCluster(t, 3)
	h := c.node(nil)
	a1, a2 := c.topic(1, "a"), c.topic(1, "b")
	s := subscribe(t, h, "", a1, a2)
	evs, _ := take(t, s, 1)
	if evs[0].ID() != "log1-1" { // the shard's count mark is at 1
		t.Fatalf("marker id %q, want log1-1", evs[0].ID())
	}
	m := publishTo(t, h, "x", a1)
	evs, _ = take(t, s, 1)
	if evs[0].ID() != "log1-2" || evs[0].ID() != m.Pos.String() || evs[0].Shared() != nil {
		t.Fatalf("event id %q (a copy of its own: %v); want the shared event with id %s", evs[0].ID(), evs[0].Shared() != nil, m.Pos)
	}
}

// TestShardsExactlyOnce: a subscriber of topics on several shards gets
// every event of its topics once, events published to several of them
// (split over shards) included, with vector ids; resuming from any id it
// saw, on another node, gives exactly the rest.
func TestShardsExactlyOnce(t *testing.T) {
	c := newCluster(t, 3)
	nodeA, nodeB := c.node(nil), c.node(nil)
	x, y, z := c.topic(0, "x"), c.topic(1, "y"), c.topic(2, "z")
	s := subscribe(t, nodeA, "", x, y, z)
	take(t, s, 1) // the marker

	var want []string
	publish := func(data string, topics ...string) {
		publishTo(t, nodeB, data, topics...)
		want = append(want, data)
	}
	publish("1", x)
	publish("2", y)
	publish("3", x, y)    // on shards 0 and 1
	publish("4", z, y, x) // on all three
	publish("5", z)
	evs, _ := take(t, s, len(want))
	if got := descs(evs); got != strings.Join(want, " ") {
		t.Fatalf("got %q, want %q", got, strings.Join(want, " "))
	}
	for _, ev := range evs {
		if !strings.Contains(ev.ID(), "~") || ev.Shared() == nil || ev.Shared().Msg != ev.Msg || ev.Shared().ID() != ev.Msg.Pos.String() {
			t.Fatalf("event %s: id %q; want a vector id on a copy of the shared event", desc(ev), ev.ID())
		}
	}
	if extra, _ := pending(s); len(extra) > 0 {
		t.Fatalf("duplicates: %s", descs(extra))
	}
	// Resume on the other node from each id seen: exactly what follows.
	publish("6", y, z)
	all, _ := take(t, s, 1)
	evs = append(evs, all...)
	for i, ev := range evs {
		r := subscribe(t, nodeB, ev.ID(), x, y, z)
		got, _ := take(t, r, len(want)-i-1) // the rest (then maybe a marker)
		more, _ := pending(r)
		got = append(got, more...)
		var data []string
		for _, g := range got {
			switch g.Kind {
			case hub.KindMessage:
				data = append(data, g.Msg.Data)
			case hub.KindReset:
				t.Fatalf("resume from %q: %s", ev.ID(), desc(g))
			}
		}
		// No order across shards: the same events, each once.
		slices.Sort(data)
		if rest := slices.Sorted(slices.Values(want[i+1:])); !slices.Equal(data, rest) {
			t.Errorf("resume from event %s (%q): got %q, want %q", desc(ev), ev.ID(), data, rest)
		}
		r.Close()
	}
}

// TestShardsResetOnOneShard: an id whose fingerprint does not match the
// shards' epochs (another deployment, or a shard that lost its data) gets
// herald.reset epoch-changed and the whole history; an unparseable one
// invalid-id; a one-log id of another epoch epoch-changed.
func TestShardsResetOnOneShard(t *testing.T) {
	c := newCluster(t, 2)
	h := c.node(nil)
	x, y := c.topic(0, "x"), c.topic(1, "y")
	publishTo(t, h, "1", x)
	publishTo(t, h, "2", y)
	for _, tc := range []struct{ id, reason string }{
		{"zzzzzzzz~0-1.1-1", hub.ReasonEpochChanged},
		{"nonsense", hub.ReasonInvalidID},
		{"gone-1", hub.ReasonEpochChanged},
	} {
		s := subscribe(t, h, tc.id, x, y)
		evs, _ := take(t, s, 3)
		if got := descs(evs); !strings.HasPrefix(got, "reset:"+tc.reason+" 1 2") {
			t.Errorf("from %q: %q, want a %s reset then the history", tc.id, got, tc.reason)
		}
		s.Close()
	}
}

// TestInterest: a node reads no log while it has no subscriber, reads a
// shard while one of its subscriptions needs it, and stops when the last
// one ends; a message published meanwhile is never missed by a
// subscription that joins later (the join is exact).
func TestInterest(t *testing.T) {
	c := newCluster(t, 3)
	h := c.node(&hub.Options{Linger: -1})
	x, y := c.topic(0, "x"), c.topic(2, "y")
	listening := func() string { return fmt.Sprint(h.Listening()) }
	if got := listening(); got != "[false false false]" {
		t.Fatalf("listening %s with no subscriber", got)
	}
	publishTo(t, h, "before", y)
	s := subscribe(t, h, "", y)
	if got := listening(); got != "[false false true]" {
		t.Fatalf("listening %s with a subscriber of shard 2", got)
	}
	s2 := subscribe(t, h, "", x, y)
	if got := listening(); got != "[true false true]" {
		t.Fatalf("listening %s with subscribers of shards 0 and 2", got)
	}
	publishTo(t, h, "live", y)
	if evs, _ := take(t, s, 2); descs(evs) != "pos:2 live" {
		t.Fatalf("got %q", descs(evs))
	}
	if st := h.ShardStats(); st[2].Received == 0 || st[1].Received != 0 || !st[2].Listening {
		t.Errorf("shard stats %+v: want messages read from shard 2 only", st)
	}
	s.Close()
	s2.Close()
	testkit.WaitWithin(t, 30*time.Second, "the node to stop listening", func() bool { return listening() == "[false false false]" })
	// Published while nobody listens, then a subscriber resumes from before.
	m := publishTo(t, h, "while idle", y)
	r := subscribe(t, h, "log2-3", y)
	if evs, _ := take(t, r, 1); descs(evs) != "while idle" || evs[0].ID() != m.Pos.String() {
		t.Fatalf("resume after an idle period: %q", descs(evs))
	}
}

// TestShardsHandOverUnderConcurrency: subscribers of topics on several
// shards drop and resume (on either of two nodes) while events are
// published, some to several shards at once; each sees every event of its
// topics exactly once, in order per topic.
func TestShardsHandOverUnderConcurrency(t *testing.T) {
	const shards, subscribers, events = 3, 12, 600
	c := newCluster(t, shards)
	nodes := []*hub.Hub{c.node(&hub.Options{Linger: -1}), c.node(&hub.Options{Linger: -1})}
	topics := []string{c.topic(0, "p"), c.topic(1, "q"), c.topic(2, "r"), c.topic(0, "s")}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	type seen struct {
		mu   sync.Mutex
		data []string
	}
	results := make([]*seen, subscribers)
	follows := make([][]string, subscribers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range subscribers {
		results[i] = &seen{}
		// Each follows two or three topics, on at least two shards.
		follows[i] = []string{topics[i%4], topics[(i+1)%4]}
		if i%3 == 0 {
			follows[i] = append(follows[i], topics[(i+2)%4])
		}
		// Where it stands before anything is published.
		first := subscribe(t, nodes[0], "", follows[i]...)
		evs, _ := take(t, first, 1)
		last := evs[0].ID()
		first.Close()
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for {
				node := nodes[rng.IntN(2)]
				s, err := node.Subscribe(ctx, hub.Request{Topics: follows[i], LastEventID: last})
				if err != nil {
					t.Errorf("subscriber %d: %v", i, err)
					return
				}
				budget := 1 + rng.IntN(40)
				var batch []*hub.Event
				open := true
				for open && budget > 0 {
					select {
					case <-s.Ready():
					case <-stop:
						batch, _ = s.Pop(batch[:0])
						budget = 0
					case <-ctx.Done():
						s.Close()
						return
					}
					batch, open = s.Pop(batch[:0])
					for _, ev := range batch {
						switch ev.Kind {
						case hub.KindReset:
							t.Errorf("subscriber %d: %s after %q", i, desc(ev), last)
						case hub.KindMessage:
							results[i].mu.Lock()
							results[i].data = append(results[i].data, ev.Msg.Data)
							results[i].mu.Unlock()
							budget--
						}
						if id := ev.ID(); id != "" {
							last = id
						}
					}
				}
				s.Close()
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	var published [][]string // topics of each event
	for n := range events {
		var ts []string
		for _, t := range topics {
			if rand.IntN(3) == 0 {
				ts = append(ts, t)
			}
		}
		if len(ts) == 0 {
			ts = topics[n%4 : n%4+1]
		}
		publishTo(t, nodes[n%2], fmt.Sprint(n), ts...)
		published = append(published, ts)
	}
	// Everyone catches up, then stops.
	for i := range subscribers {
		var want []string
		for n, ts := range published {
			if hasAny(ts, follows[i]) {
				want = append(want, fmt.Sprint(n))
			}
		}
		caughtUp := testkit.Within(30*time.Second, func() bool {
			results[i].mu.Lock()
			defer results[i].mu.Unlock()
			return len(results[i].data) >= len(want)
		})
		if !caughtUp {
			results[i].mu.Lock()
			got := slices.Clone(results[i].data)
			results[i].mu.Unlock()
			var missing []string
			for _, d := range want {
				if !slices.Contains(got, d) {
					missing = append(missing, d)
				}
			}
			t.Fatalf("subscriber %d (%v) got %d of %d events; missing %v", i, follows[i], len(got), len(want), missing)
		}
		results[i].mu.Lock()
		got := results[i].data
		results[i].mu.Unlock()
		checkPerTopicOnce(t, i, got, want, published, follows[i], func(ts []string) bool {
			for _, x := range ts {
				if shard.Of(x, shards) != shard.Of(ts[0], shards) {
					return true
				}
			}
			return false
		})
	}
	close(stop)
	wg.Wait()
}

func hasAny(ts, of []string) bool {
	for _, t := range ts {
		for _, o := range of {
			if t == o {
				return true
			}
		}
	}
	return false
}

// checkPerTopicOnce checks that got holds every event of want once, and
// the events of each followed topic in publish order, but for split events
// (published to topics on several shards), which a subscriber of several
// shards takes in the order of the lowest shard.
func checkPerTopicOnce(t *testing.T, i int, got, want []string, published [][]string, follows []string, split func([]string) bool) {
	t.Helper()
	count := map[string]int{}
	for _, d := range got {
		count[d]++
	}
	for _, d := range want {
		if count[d] != 1 {
			t.Errorf("subscriber %d got event %s %d times", i, d, count[d])
		}
		delete(count, d)
	}
	for d := range count {
		t.Errorf("subscriber %d got event %s of no topic it follows", i, d)
	}
	for _, topic := range follows {
		prev := -1
		for _, d := range got {
			var n int
			fmt.Sscan(d, &n)
			if !hasAny(published[n], []string{topic}) || split(published[n]) {
				continue
			}
			if n < prev {
				t.Errorf("subscriber %d: events of %s out of order (%d after %d)", i, topic, n, prev)
			}
			prev = n
		}
	}
}

// TestShardDown: when one shard's broker is closed, subscribing to its
// topics fails and the other shards' topics work on.
func TestShardDown(t *testing.T) {
	c := newCluster(t, 2)
	h := c.node(&hub.Options{Linger: -1})
	x, y := c.topic(0, "x"), c.topic(1, "y")
	c.broker.Shards()[1].Close()
	if _, err := h.Subscribe(context.Background(), hub.Request{Topics: []string{y}}); err == nil {
		t.Fatal("subscribed to a topic of a closed shard")
	}
	if _, err := h.Publish(context.Background(), &pubsub.Message{Topics: []string{y}, Data: "d"}); !errors.Is(err, pubsub.ErrClosed) {
		t.Fatalf("publish to a closed shard: %v", err)
	}
	s := subscribe(t, h, "", x)
	publishTo(t, h, "fine", x)
	if evs, _ := take(t, s, 2); descs(evs) != "pos:1 fine" {
		t.Fatalf("the other shard: %q", descs(evs))
	}
}

// BenchmarkFanOutShards: 100 subscribers of topics on 1, 2 or 4 shards
// get every event published to one of their topics; reported: the bytes
// of each event's id and of its SSE form (a subscriber of several shards
// gets a vector id: the bytes it adds per event), and allocations.
func BenchmarkFanOutShards(b *testing.B) {
	for _, spread := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("shards=%d", spread), func(b *testing.B) {
			c := newCluster(b, 4)
			h := c.node(nil)
			var topics []string
			for k := range spread {
				topics = append(topics, c.topic(k, "t"))
			}
			subs := make([]*hub.Subscription, 100)
			for i := range subs {
				subs[i] = subscribe(b, h, "", topics...)
				take(b, subs[i], 1)
			}
			data := strings.Repeat("x", 100)
			var idBytes, sseBytes int
			var buf []*hub.Event
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				publishTo(b, h, data, topics[i%len(topics)])
				for _, s := range subs {
					buf, _ = s.Pop(buf[:0])
					for _, ev := range buf {
						idBytes += len(ev.ID())
						sseBytes += len(encodeOnce(ev))
					}
				}
			}
			n := float64(b.N * len(subs))
			b.ReportMetric(float64(idBytes)/n, "id-bytes/delivery")
			b.ReportMetric(float64(sseBytes)/n, "sse-bytes/delivery")
		})
	}
}
