package mercure

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestEnvelope(t *testing.T) {
	for _, tc := range []struct {
		name string
		meta meta
	}{
		{"no meta", meta{}},
		{"id", meta{ID: "urn:uuid:1"}},
		{"id with reserved characters", meta{ID: "a&b=c d%\u00e9"}},
		{"retry", meta{Retry: 3 * time.Second}},
		{"both", meta{ID: "x", Retry: time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stored := wrap(tc.meta)
			if tc.meta == (meta{}) && stored != nil {
				t.Fatalf("no meta was stored as %v", stored)
			}
			msg := &pubsub.Message{Data: "d", Meta: stored, Pos: pubsub.Position{Epoch: "e", Offset: 3}}
			if m := unwrap(msg); m != tc.meta {
				t.Fatalf("unwrap(wrap) = %+v, want %+v", m, tc.meta)
			}
			want := tc.meta.ID
			if want == "" {
				want = "e-3"
			}
			if got := eventID(msg); got != want {
				t.Fatalf("eventID = %q, want %q", got, want)
			}
		})
	}
	// Metadata it does not understand is left out.
	if m := unwrap(&pubsub.Message{Meta: map[string]string{metaRetry: "soon", "other.x": "y"}}); m != (meta{}) {
		t.Errorf("unwrap of foreign metadata = %+v", m)
	}
}

func TestIndex(t *testing.T) {
	x := newIndex(3)
	pos := func(n uint64) pubsub.Position { return pubsub.Position{Epoch: "e", Offset: n} }
	x.put("a", pos(1))
	x.put("b", pos(2))
	x.put("c", pos(3))
	x.put("a", pos(1)) // the follower sees it again: no change
	x.put("d", pos(4)) // evicts the oldest, a
	if _, ok := x.get("a"); ok {
		t.Error("the oldest id was not forgotten")
	}
	for id, want := range map[string]uint64{"b": 2, "c": 3, "d": 4} {
		if p, ok := x.get(id); !ok || p != pos(want) {
			t.Errorf("get(%q) = %v %v, want %v", id, p, ok, pos(want))
		}
	}
	x.put("b", pos(9)) // an id reused: the latest update wins
	if p, _ := x.get("b"); p != pos(9) {
		t.Errorf("reused id: %v", p)
	}
	x.put("b", pos(5)) // an older update of it read late: no change
	if p, _ := x.get("b"); p != pos(9) {
		t.Errorf("an older update of a reused id replaced the latest: %v", p)
	}
	// Reuse counts as the id's latest publish: c, now the oldest, goes
	// first, and b stays.
	x.put("e", pos(10))
	if _, ok := x.get("c"); ok {
		t.Error("c should have been forgotten before the reused b")
	}
	if p, ok := x.get("b"); !ok || p != pos(9) {
		t.Errorf("the reused id was forgotten: %v %v", p, ok)
	}
	// Another epoch: the new position wins whatever its offset.
	x.put("e", pubsub.Position{Epoch: "f", Offset: 1})
	if p, _ := x.get("e"); p.Epoch != "f" {
		t.Errorf("an id of a new epoch: %v", p)
	}
	x.clear()
	if x.len() != 0 {
		t.Error("clear left ids")
	}
	// Eviction keeps the order slice bounded.
	big := newIndex(10)
	for i := range 10000 {
		big.put(fmt.Sprint(i), pos(uint64(i+1)))
	}
	if big.len() != 10 || len(big.order)-big.head != 10 || len(big.order) > 3000 {
		t.Errorf("after 10000 puts: %d ids, order %d (head %d)", big.len(), len(big.order), big.head)
	}
	// So does reusing a few ids over and over (stale entries are
	// compacted).
	reused := newIndex(100)
	for i := range 20000 {
		reused.put(fmt.Sprint(i%5), pos(uint64(i+1)))
	}
	if reused.len() != 5 || len(reused.order)-reused.head > 2*5+1024+1 {
		t.Errorf("after 20000 reuses of 5 ids: %d ids, order %d (head %d)", reused.len(), len(reused.order), reused.head)
	}
	for i := range 5 {
		if p, ok := reused.get(fmt.Sprint(i)); !ok || p != pos(uint64(20000-4+i)) {
			t.Errorf("id %d: %v %v, want its latest update %d", i, p, ok, 20000-4+i)
		}
	}
}

// newHub runs a hub over a memory broker until the test ends.
func newHub(t *testing.T) *hub.Hub {
	t.Helper()
	b := memory.New(&memory.Options{Epoch: "epoch1"})
	h := hub.New(b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { h.Close(); cancel(); <-done; b.Close() })
	return h
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Ids of updates that reach the broker some other way than this node's
// publish handler (another node, or before this node started) resolve
// through the follower, or through the lookup's read of what the follower
// has not seen yet.
func TestIndexFollowsTheLog(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	other := func(id, data string) pubsub.Position {
		m := &pubsub.Message{Topics: []string{"t", HubTopic}, Data: data, Meta: wrap(meta{ID: id})}
		p, err := h.Publish(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := other("before-start", "x")
	h.Publish(ctx, &pubsub.Message{Topics: []string{"t", HubTopic}, Data: "no id"})

	x := newIndex(100)
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { x.follow(fctx, h, quiet()); close(done) }()
	defer func() { cancel(); <-done }()

	if p, ok := x.lookup(ctx, h.Broker(), "before-start"); !ok || p != before {
		t.Fatalf("lookup of an id published before the follower started: %v %v, want %v", p, ok, before)
	}
	later := other("later", "y")
	if p, ok := x.lookup(ctx, h.Broker(), "later"); !ok || p != later {
		t.Fatalf("lookup right after a publish elsewhere: %v %v, want %v", p, ok, later)
	}
	// The follower gets there too, without lookups.
	third := other("third", "z")
	testkit.WaitFor(t, "the follower to index an id published on the log", func() bool {
		p, ok := x.get("third")
		return ok && p == third
	})
	if _, ok := x.lookup(ctx, h.Broker(), "never-published"); ok {
		t.Fatal("an unknown id resolved")
	}
}
