package journal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/journal"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newHub(t *testing.T) *hub.Hub {
	t.Helper()
	b := memory.New(nil)
	t.Cleanup(func() { b.Close() })
	return hub.New(b, nil)
}

func open(t *testing.T, h *hub.Hub, node string, handlers map[string]journal.Handler) (*journal.Journal, []journal.Item) {
	t.Helper()
	j, err := journal.New(h, node, quiet())
	if err != nil {
		t.Fatal(err)
	}
	for k, f := range handlers {
		j.Handle(k, f)
	}
	left, err := j.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return j, left
}

// stored returns the items of node's journal as the broker holds them.
func stored(t *testing.T, h *hub.Hub, node string) []journal.Item {
	t.Helper()
	snap, err := h.Broker().Read(context.Background(), pubsub.Query{Topics: []string{journal.TopicPrefix + node}})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Retained) != 1 {
		t.Fatalf("journal of %s: %d retained messages, want 1", node, len(snap.Retained))
	}
	m := snap.Retained[0]
	if !m.Private || m.Type != journal.EventType {
		t.Errorf("journal message: private %v type %q, want private %q", m.Private, m.Type, journal.EventType)
	}
	var rec struct{ Items []journal.Item }
	if err := json.Unmarshal([]byte(m.Data), &rec); err != nil {
		t.Fatal(err)
	}
	return rec.Items
}

func ids(items []journal.Item) map[string]bool {
	out := make(map[string]bool)
	for _, it := range items {
		out[it.Kind+"/"+it.ID] = true
	}
	return out
}

// TestAddIsStoredBeforeItReturns: an added item is in the stored journal
// when Add returns; a done one leaves it shortly.
func TestAddIsStoredBeforeItReturns(t *testing.T) {
	h := newHub(t)
	j, left := open(t, h, "n1", nil)
	if len(left) != 0 {
		t.Fatalf("a new node's leftovers: %v", left)
	}
	ctx := context.Background()
	if err := j.Add(ctx, journal.Item{Kind: "chat", ID: "a", Data: json.RawMessage(`{"model":"m"}`)}); err != nil {
		t.Fatal(err)
	}
	if got := ids(stored(t, h, "n1")); !got["chat/a"] {
		t.Fatalf("stored journal %v lacks chat/a", got)
	}
	if err := j.Add(ctx, journal.Item{Kind: "demo", ID: "7"}); err != nil {
		t.Fatal(err)
	}
	j.Done("chat", "a")
	testkit.WaitFor(t, "chat/a to leave the journal", func() bool {
		got := ids(stored(t, h, "n1"))
		return !got["chat/a"] && got["demo/7"]
	})
	if err := j.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestOpenEndsLeftovers: the next run of a node hands what the previous one
// left running to the handlers of its kinds, then stores an empty journal;
// another node's journal is not touched.
func TestOpenEndsLeftovers(t *testing.T) {
	h := newHub(t)
	ctx := context.Background()
	prev, _ := open(t, h, "n1", nil)
	other, _ := open(t, h, "n2", nil)
	for _, it := range []journal.Item{{Kind: "chat", ID: "a"}, {Kind: "chat", ID: "b"}, {Kind: "demo", ID: "3"}, {Kind: "gone", ID: "x"}} {
		if err := prev.Add(ctx, it); err != nil {
			t.Fatal(err)
		}
	}
	prev.Done("chat", "b")
	if err := prev.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.Add(ctx, journal.Item{Kind: "chat", ID: "z"}); err != nil {
		t.Fatal(err)
	}
	// The previous run crashed: nothing more happens to prev.

	var mu sync.Mutex
	got := map[string][]string{}
	handler := func(kind string) journal.Handler {
		return func(_ context.Context, items []journal.Item) {
			mu.Lock()
			defer mu.Unlock()
			for _, it := range items {
				got[kind] = append(got[kind], it.ID)
			}
		}
	}
	next, left := open(t, h, "n1", map[string]journal.Handler{"chat": handler("chat"), "demo": handler("demo")})
	if len(left) != 3 {
		t.Errorf("leftovers %v, want chat/a, demo/3 and gone/x", left)
	}
	if fmt.Sprint(got["chat"]) != "[a]" || fmt.Sprint(got["demo"]) != "[3]" {
		t.Errorf("handlers got %v, want chat [a] and demo [3]", got)
	}
	if items := stored(t, h, "n1"); len(items) != 0 {
		t.Errorf("journal after Open: %v, want empty", items)
	}
	if items := ids(stored(t, h, "n2")); !items["chat/z"] {
		t.Errorf("the other node's journal lost its item: %v", items)
	}
	if err := next.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentAdds: concurrent Adds all return with their item stored.
func TestConcurrentAdds(t *testing.T) {
	h := newHub(t)
	j, _ := open(t, h, "n1", nil)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if err := j.Add(context.Background(), journal.Item{Kind: "chat", ID: fmt.Sprint(i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(stored(t, h, "n1")); n != 50 {
		t.Fatalf("journal holds %d items, want 50", n)
	}
	if err := j.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestAddFailsWhenTheBrokerDoes: a journal that cannot be stored makes Add
// fail (the work must not start unrecorded).
func TestAddFailsWhenTheBrokerDoes(t *testing.T) {
	b := memory.New(nil)
	h := hub.New(b, nil)
	j, _ := open(t, h, "n1", nil)
	b.Close()
	if err := j.Add(context.Background(), journal.Item{Kind: "chat", ID: "a"}); err == nil {
		t.Fatal("Add succeeded with the broker closed")
	}
}

func TestNames(t *testing.T) {
	h := newHub(t)
	for _, bad := range []string{"", "a\nb", string(make([]byte, 300))} {
		if _, err := journal.New(h, bad, nil); err == nil {
			t.Errorf("New(%q) succeeded", bad)
		}
	}
	var nilJournal *journal.Journal
	if err := nilJournal.Add(context.Background(), journal.Item{Kind: "chat", ID: "a"}); err != nil {
		t.Errorf("nil journal Add: %v", err)
	}
	nilJournal.Done("chat", "a")
}
