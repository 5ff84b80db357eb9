package hub_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
)

// A subscription with Match follows a wide topic and gets only the messages
// Match accepts, in history and live, private ones included when Match says
// so (CanSeePrivate is not consulted); resuming stays exact.
func TestMatchNarrowsSubscription(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	// Messages carry a wide topic "all" beside their own.
	pub := func(data string, private bool, topics ...string) *pubsub.Message {
		return e.publish(&pubsub.Message{Topics: append(topics, "all"), Data: data, Private: private})
	}
	match := func(m *pubsub.Message) bool {
		return strings.HasPrefix(m.Topics[0], "books/") && (!m.Private || m.Topics[0] == "books/1")
	}
	first := pub("h1", false, "books/1")
	pub("h2", false, "movies/1")
	pub("h3", true, "books/2") // private, not allowed
	pub("h4", true, "books/1") // private, allowed

	s, err := e.hub.Subscribe(context.Background(), hub.Request{
		Topics: []string{"all"}, LastEventID: first.Pos.String(), Match: match,
		CanSeePrivate: func(string) bool { return true }, // ignored when Match is set
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if evs, _ := take(t, s, 1); descs(evs) != "h4" {
		t.Fatalf("prelude %q, want h4", descs(evs))
	}
	pub("l1", false, "movies/2")
	pub("l2", true, "books/3")
	last := pub("l3", false, "books/9")
	if evs, _ := take(t, s, 1); descs(evs) != "l3" {
		t.Fatalf("live %q, want l3", descs(evs))
	}

	// Without Match, the default rule holds: public messages only.
	plain, err := e.hub.Subscribe(context.Background(), hub.Request{Topics: []string{"all"}, LastEventID: first.Pos.String()})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if evs, _ := take(t, plain, 3); descs(evs) != "h2 l1 l3" {
		t.Fatalf("default rule %q, want h2 l1 l3", descs(evs))
	}
	// Resuming the Match subscription from its last event replays nothing.
	again, err := e.hub.Subscribe(context.Background(), hub.Request{Topics: []string{"all"}, LastEventID: last.Pos.String(), Match: match})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if evs, _ := pending(again); descs(evs) != "pos:7" {
		t.Fatalf("resume from the last event: %q, want only the position marker pos:7", descs(evs))
	}
}

// A final message that Match refuses still ends the topic, as an id-only
// event.
func TestMatchHiddenFinal(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	s, err := e.hub.Subscribe(context.Background(), hub.Request{Topics: []string{"t"}, Match: func(*pubsub.Message) bool { return false }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	take(t, s, 1) // position marker
	m := e.publish(&pubsub.Message{Topics: []string{"t"}, Data: "end", Final: true})
	evs, open := take(t, s, 1)
	if open {
		evs, open = take(t, s, len(evs)+1)
	}
	if open || len(evs) != 1 || evs[0].Kind != hub.KindPosition || evs[0].Pos != m.Pos {
		t.Fatalf("got %q open=%v, want an id-only event at %s and the end", descs(evs), open, m.Pos)
	}
}

// Memo computes once per event and key, whatever the number of callers.
func TestEventMemo(t *testing.T) {
	type keyA struct{}
	type keyB struct{}
	ev := hub.NewMessageEvent(&pubsub.Message{Topics: []string{"t"}, Data: "d"})
	var calls atomic.Int32
	f := func(s string) func() []byte {
		return func() []byte { calls.Add(1); return []byte(s) }
	}
	done := make(chan string, 20)
	for range 10 {
		go func() { done <- string(ev.Memo(keyA{}, f("a"))) }()
		go func() { done <- string(ev.Memo(keyB{}, f("b"))) }()
	}
	got := map[string]int{}
	for range 20 {
		got[<-done]++
	}
	if got["a"] != 10 || got["b"] != 10 || calls.Load() != 2 {
		t.Fatalf("results %v, %d calls; want 10 each and 2 calls", got, calls.Load())
	}
}

// A subscription's Notify callback runs with no hub lock held, so that a
// transport may take its own locks in it (the lock order in doc.go): here
// the callback closes another subscription of the same topic, which takes
// the topic's shard lock for writing and cannot finish while the fan-out
// holds it for reading.
func TestNotifyRunsOutsideHubLocks(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	s := e.subscribe("", "a")
	other := e.subscribe("", "a")
	take(t, s, 1)
	result := make(chan error, 1)
	var once sync.Once
	s.Notify(func() {
		once.Do(func() {
			closed := make(chan struct{})
			go func() { other.Close(); close(closed) }() // takes the shard lock of "a" for writing
			select {
			case <-closed:
				result <- nil
			case <-time.After(10 * time.Second):
				result <- errors.New("closing a subscription of the same topic from the Notify callback did not finish: the callback runs under the hub's shard lock")
			}
		})
	})
	e.publish(&pubsub.Message{Topics: []string{"a"}, Data: "x"})
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	if evs, _ := take(t, s, 1); descs(evs) != "x" {
		t.Fatalf("got %q, want x", descs(evs))
	}
}
