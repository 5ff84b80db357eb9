package hub_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
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

// env is a hub over a memory broker, running until the test ends.
type env struct {
	t      testing.TB
	broker *memory.Broker
	hub    *hub.Hub
}

func newEnv(t testing.TB, ret pubsub.Retention, o *hub.Options) *env {
	t.Helper()
	b := memory.New(&memory.Options{Retention: ret, Epoch: "epoch1"})
	h := hub.New(b, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		h.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		b.Close()
	})
	return &env{t: t, broker: b, hub: h}
}

func (e *env) publish(m *pubsub.Message) *pubsub.Message {
	e.t.Helper()
	if _, err := e.hub.Publish(context.Background(), m); err != nil {
		e.t.Fatalf("publish %+v: %v", m, err)
	}
	return m
}

func (e *env) pub(data string, topics ...string) *pubsub.Message {
	e.t.Helper()
	return e.publish(&pubsub.Message{Topics: topics, Data: data})
}

func (e *env) subscribe(lastID string, topics ...string) *hub.Subscription {
	e.t.Helper()
	s, err := e.hub.Subscribe(context.Background(), hub.Request{Topics: topics, LastEventID: lastID})
	if err != nil {
		e.t.Fatalf("subscribe %v from %q: %v", topics, lastID, err)
	}
	e.t.Cleanup(s.Close)
	return s
}

// desc describes an event: a message by its data, "reset:<reason>",
// "pos:<offset>".
func desc(ev *hub.Event) string {
	switch ev.Kind {
	case hub.KindMessage:
		return ev.Msg.Data
	case hub.KindReset:
		return "reset:" + ev.Reset.Reason
	default:
		return "pos:" + strconv.FormatUint(ev.Pos.Offset, 10)
	}
}

func descs(evs []*hub.Event) string {
	var s []string
	for _, ev := range evs {
		s = append(s, desc(ev))
	}
	return strings.Join(s, " ")
}

// take waits until n events are queued (or the subscription ends) and
// returns what it got.
func take(t testing.TB, s *hub.Subscription, n int) (evs []*hub.Event, open bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	open = true
	for len(evs) < n && open {
		select {
		case <-s.Ready():
		case <-timeout:
			t.Fatalf("got %d events (%s), want %d", len(evs), descs(evs), n)
		}
		evs, open = s.Pop(evs)
	}
	return evs, open
}

// pending returns what is queued now, without waiting.
func pending(s *hub.Subscription) ([]*hub.Event, bool) {
	select {
	case <-s.Ready():
	default:
	}
	return s.Pop(nil)
}

func id(m *pubsub.Message) string { return m.Pos.String() }

func TestPrelude(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	m := make([]*pubsub.Message, 6)
	for i := 1; i <= 5; i++ {
		m[i] = e.pub(fmt.Sprint("a", i), "a")
	}
	e.pub("b6", "b") // offset 6

	for _, tc := range []struct {
		name, lastID string
		topics       []string
		want         string
	}{
		{"new subscriber gets the head", "", []string{"a"}, "pos:6"},
		{"resume replays the rest", id(m[2]), []string{"a"}, "a3 a4 a5 pos:6"},
		{"resume at the end", id(m[5]), []string{"a"}, "pos:6"},
		{"resume on several topics with one id", id(m[4]), []string{"a", "b"}, "a5 b6"},
		{"no marker when the replay ends at the head", id(m[5]), []string{"b"}, "b6"},
		{"resume from 0", "epoch1-0", []string{"b"}, "b6"},
		{"duplicate topics are one", id(m[4]), []string{"a", "a", "b"}, "a5 b6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := e.subscribe(tc.lastID, tc.topics...)
			evs, open := pending(s)
			if got := descs(evs); got != tc.want || !open {
				t.Errorf("prelude %q (open %v), want %q", got, open, tc.want)
			}
		})
	}
}

func TestPreludeRetained(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	e.publish(&pubsub.Message{Topics: []string{"a"}, Data: "a-old", Retain: true})
	e.publish(&pubsub.Message{Topics: []string{"a"}, Data: "a-state", Retain: true})
	e.publish(&pubsub.Message{Topics: []string{"b"}, Data: "b-state", Retain: true})
	e.pub("a-plain", "a") // offset 4, not retained

	evs, _ := pending(e.subscribe("", "a", "b"))
	if got := descs(evs); got != "a-state b-state pos:4" {
		t.Errorf("new subscriber prelude %q", got)
	}
	evs, _ = pending(e.subscribe("", "b"))
	if got := descs(evs); got != "b-state pos:4" {
		t.Errorf("new subscriber of b: %q", got)
	}
	// A resuming subscriber gets history, not the retained state.
	evs, _ = pending(e.subscribe("epoch1-3", "a", "b"))
	if got := descs(evs); got != "a-plain" {
		t.Errorf("resuming subscriber: %q", got)
	}
}

func TestPreludeResets(t *testing.T) {
	e := newEnv(t, pubsub.Retention{MaxEvents: 2}, nil)
	for i := 1; i <= 5; i++ {
		e.pub(fmt.Sprint("a", i), "a") // a1, a2, a3 evicted
	}
	for _, tc := range []struct {
		name, lastID, want string
	}{
		{"history truncated", "epoch1-1", "reset:history-truncated a4 a5"},
		{"not truncated at the last evicted", "epoch1-3", "a4 a5"},
		{"epoch changed", "oldepoch-3", "reset:epoch-changed a4 a5"},
		{"unparseable id", "garbage", "reset:invalid-id a4 a5"},
		{"id with a bad epoch", "ep?ch-3", "reset:invalid-id a4 a5"},
		{"id from the future", "epoch1-99", "reset:invalid-id a4 a5"},
		{"negative offset", "epoch1--1", "reset:invalid-id a4 a5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := e.subscribe(tc.lastID, "a")
			evs, open := pending(s)
			if got := descs(evs); got != tc.want || !open {
				t.Fatalf("prelude %q (open %v), want %q", got, open, tc.want)
			}
			if evs[0].Kind != hub.KindReset {
				return
			}
			// The reset tells the client what it sent.
			if evs[0].Reset.LastEventID != tc.lastID || evs[0].ID() != "" {
				t.Errorf("reset %+v", evs[0].Reset)
			}
		})
	}
	st := e.hub.Stats()
	if st.Resets[hub.ReasonTruncated] != 1 || st.Resets[hub.ReasonEpochChanged] != 1 || st.Resets[hub.ReasonInvalidID] != 4 {
		t.Errorf("reset counters %v", st.Resets)
	}
}

// After any reset, each topic's retained message comes first (in position
// order with the history kept), as a new subscriber gets it, then live
// events: a progress bar resumed after a reset shows the current value.
func TestPreludeRetainedAfterReset(t *testing.T) {
	for _, tc := range []struct {
		name, lastID, want string
	}{
		{"history truncated", "epoch1-1", "reset:history-truncated 20% p-log3 p-log4 q-state q-log6"},
		{"epoch changed", "oldepoch-3", "reset:epoch-changed 20% p-log3 p-log4 q-state q-log6"},
		{"unparseable id", "garbage", "reset:invalid-id 20% p-log3 p-log4 q-state q-log6"},
		{"id from the future", "epoch1-99", "reset:invalid-id 20% p-log3 p-log4 q-state q-log6"},
		{"exact resume gets history only", "epoch1-2", "p-log3 p-log4 q-state q-log6"},
		{"exact resume at the head", "epoch1-6", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, pubsub.Retention{MaxEvents: 2}, nil)
			e.publish(&pubsub.Message{Topics: []string{"p"}, Data: "10%", Retain: true})     // 1
			e.publish(&pubsub.Message{Topics: []string{"p"}, Data: "20%", Retain: true})     // 2
			e.pub("p-log3", "p")                                                             // 3: 10% evicted
			e.pub("p-log4", "p")                                                             // 4: 20% evicted, still p's state
			e.publish(&pubsub.Message{Topics: []string{"q"}, Data: "q-state", Retain: true}) // 5, in q's history
			e.pub("q-log6", "q")                                                             // 6

			s := e.subscribe(tc.lastID, "p", "q")
			evs, open := pending(s)
			got := descs(evs)
			if got != tc.want && got != strings.TrimSpace(tc.want+" pos:6") || !open {
				t.Fatalf("prelude %q (open %v), want %q", got, open, tc.want)
			}
			live := e.pub("live", "p")
			evs, _ = take(t, s, 1)
			if len(evs) != 1 || evs[0].Msg != live {
				t.Fatalf("live event after the prelude: %q", descs(evs))
			}
		})
	}
}

// An empty log after a reset still gives the client a position.
func TestResetOnEmptyHistoryGivesPosition(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	e.pub("x", "other")
	evs, _ := pending(e.subscribe("nope", "a"))
	if got := descs(evs); got != "reset:invalid-id pos:1" {
		t.Errorf("prelude %q", got)
	}
}

func TestLiveDelivery(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	a := e.subscribe("", "a")
	ab := e.subscribe("", "a", "b")
	take(t, a, 1) // position marker
	take(t, ab, 1)
	e.pub("1", "a")
	e.pub("2", "a", "b") // once for ab
	e.pub("3", "b")
	e.pub("4", "c")
	if evs, _ := take(t, a, 2); descs(evs) != "1 2" {
		t.Errorf("a got %q", descs(evs))
	}
	if evs, _ := take(t, ab, 3); descs(evs) != "1 2 3" {
		t.Errorf("a,b got %q", descs(evs))
	}
	e.pub("5", "a")
	if evs, _ := take(t, ab, 1); descs(evs) != "5" {
		t.Errorf("a,b then got %q, want only 5", descs(evs))
	}
}

func TestPrivateMessages(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	sub := func(lastID string, can func(string) bool, topics ...string) *hub.Subscription {
		s, err := e.hub.Subscribe(context.Background(), hub.Request{Topics: topics, LastEventID: lastID, CanSeePrivate: can})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	only := func(allowed string) func(string) bool { return func(t string) bool { return t == allowed } }
	e.pub("public", "a")                                                                     // 1
	e.publish(&pubsub.Message{Topics: []string{"a"}, Data: "secret-a", Private: true})       // 2
	e.publish(&pubsub.Message{Topics: []string{"a", "b"}, Data: "secret-ab", Private: true}) // 3

	for _, tc := range []struct {
		name   string
		can    func(string) bool
		topics []string
		want   string
	}{
		{"no grant", nil, []string{"a"}, "public pos:3"},
		{"grant on a", only("a"), []string{"a"}, "public secret-a secret-ab"},
		{"grant on b only", only("b"), []string{"a", "b"}, "public secret-ab"},
		{"grant on a topic not followed", only("b"), []string{"a"}, "public pos:3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			replay, _ := pending(sub("epoch1-0", tc.can, tc.topics...))
			if got := descs(replay); got != tc.want {
				t.Errorf("replay %q, want %q", got, tc.want)
			}
		})
	}

	// Live, too.
	none := sub("", nil, "a")
	all := sub("", only("a"), "a")
	take(t, none, 1)
	take(t, all, 1)
	e.publish(&pubsub.Message{Topics: []string{"a"}, Data: "secret-live", Private: true})
	e.pub("public-live", "a")
	if evs, _ := take(t, all, 2); descs(evs) != "secret-live public-live" {
		t.Errorf("authorised live: %q", descs(evs))
	}
	if evs, _ := take(t, none, 1); descs(evs) != "public-live" {
		t.Errorf("unauthorised live: %q", descs(evs))
	}
}

func TestFinals(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	s := e.subscribe("", "job", "other")
	take(t, s, 1)
	e.pub("working", "job")
	fin := e.publish(&pubsub.Message{Topics: []string{"job"}, Data: "done", Final: true})
	evs, open := take(t, s, 2)
	if descs(evs) != "working done" || !open {
		t.Fatalf("after job's final: %q open %v; want the stream open for other", descs(evs), open)
	}
	otherFin := e.publish(&pubsub.Message{Topics: []string{"other"}, Data: "bye", Final: true})
	evs, open = take(t, s, 1)
	if descs(evs) != "bye" {
		t.Fatalf("got %q", descs(evs))
	}
	if open {
		evs, open = take(t, s, 1) // the end may come with the next Pop
	}
	if open || len(evs) != 1 || !errors.Is(s.Err(), hub.ErrFinished) || !hub.Graceful(s.Err()) {
		t.Fatalf("open %v err %v", open, s.Err())
	}

	for _, tc := range []struct {
		name, lastID string
		topics       []string
		want         error
		prelude      string
	}{
		{"new subscriber of a finished topic", "", []string{"job"}, hub.ErrFinished, ""},
		{"client that has the final", id(fin), []string{"job"}, hub.ErrFinished, ""},
		{"client that has both finals", id(otherFin), []string{"job", "other"}, hub.ErrFinished, ""},
		{"client before the final gets it", "epoch1-1", []string{"job"}, nil, "done"},
		{"client after one final gets the other", id(fin), []string{"job", "other"}, nil, "bye"},
		{"client from another epoch gets everything again", "x-1", []string{"job"}, nil, "reset:epoch-changed working done"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := e.hub.Subscribe(context.Background(), hub.Request{Topics: tc.topics, LastEventID: tc.lastID})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Subscribe = %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			defer s.Close()
			evs, open := take(t, s, 10)
			if descs(evs) != tc.prelude || open || !errors.Is(s.Err(), hub.ErrFinished) {
				t.Errorf("prelude %q open %v err %v; want %q then the end", descs(evs), open, s.Err(), tc.prelude)
			}
		})
	}
	if _, err := e.hub.Publish(context.Background(), &pubsub.Message{Topics: []string{"job"}, Data: "late"}); !errors.Is(err, pubsub.ErrTopicFinished) {
		t.Errorf("publish after final: %v", err)
	}
}

// A final the subscriber may not see still ends its stream, with an id-only
// event at the final's position so that the client's reconnect gets 204.
func TestHiddenFinal(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	s := e.subscribe("", "job")
	take(t, s, 1)
	fin := e.publish(&pubsub.Message{Topics: []string{"job"}, Data: "secret end", Final: true, Private: true})
	evs, open := take(t, s, 5)
	if open || descs(evs) != fmt.Sprint("pos:", fin.Pos.Offset) || evs[0].ID() != id(fin) {
		t.Fatalf("live: %q open %v", descs(evs), open)
	}
	// Replayed, the same.
	r := e.subscribe("epoch1-0", "job")
	if evs, open := take(t, r, 5); open || descs(evs) != fmt.Sprint("pos:", fin.Pos.Offset) {
		t.Fatalf("replay: %q open %v", descs(evs), open)
	}
	if _, err := e.hub.Subscribe(context.Background(), hub.Request{Topics: []string{"job"}, LastEventID: id(fin)}); !errors.Is(err, hub.ErrFinished) {
		t.Fatalf("resubscribe: %v", err)
	}
}

// finalsEvicted is a broker whose history has lost the final messages (the
// memory broker's bounds never evict a topic's newest message, but a
// broker may lose it, e.g. by age just before it forgets the topic).
type finalsEvicted struct{ *memory.Broker }

func (b finalsEvicted) Read(ctx context.Context, q pubsub.Query) (pubsub.Snapshot, error) {
	snap, err := b.Broker.Read(ctx, q)
	kept := snap.Events[:0:0]
	for _, m := range snap.Events {
		if m.Final {
			snap.Truncated = true
			continue
		}
		kept = append(kept, m)
	}
	snap.Events = kept
	return snap, err
}

// A topic whose final message left history is finished all the same: a
// client that resumes from before gets a reset and the end, not a stream
// that waits forever.
func TestEvictedFinal(t *testing.T) {
	b := memory.New(&memory.Options{Epoch: "epoch1"})
	defer b.Close()
	h := hub.New(finalsEvicted{b}, nil)
	defer h.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- h.Run(ctx) }()
	defer func() {
		cancel()
		<-ran
	}()
	for _, m := range []*pubsub.Message{{Topics: []string{"job"}, Data: "x"}, {Topics: []string{"job"}, Data: "done", Final: true}} {
		if _, err := h.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	s, err := h.Subscribe(ctx, hub.Request{Topics: []string{"job"}, LastEventID: "epoch1-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs, open := take(t, s, 5)
	if open || !strings.HasPrefix(descs(evs), "reset:history-truncated pos:") || !errors.Is(s.Err(), hub.ErrFinished) {
		t.Fatalf("prelude %q open %v err %v", descs(evs), open, s.Err())
	}
}

func TestSlowConsumerIsCutOff(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, &hub.Options{QueueBytes: 8 << 10})
	slow := e.subscribe("", "t")
	fast := e.subscribe("", "t")
	take(t, fast, 1)
	// The publisher goes on in waves, each as soon as the fast subscriber
	// has the previous one: never waiting for the slow one.
	const n, wave = 200, 5
	data := strings.Repeat("x", 500)
	var got []*hub.Event
	for i := 0; i < n; i += wave {
		for j := i; j < i+wave; j++ {
			e.pub(fmt.Sprint(j, data), "t")
		}
		evs, open := take(t, fast, wave)
		if !open {
			t.Fatalf("fast subscriber ended: %v", fast.Err())
		}
		got = append(got, evs...)
	}
	if len(got) != n || !strings.HasPrefix(desc(got[n-1]), fmt.Sprint(n-1, "x")) {
		t.Fatalf("fast subscriber got %d events, want %d", len(got), n)
	}
	evs, open := pending(slow)
	if open || len(evs) != 0 || !errors.Is(slow.Err(), hub.ErrSlowConsumer) || hub.Graceful(slow.Err()) {
		t.Fatalf("slow subscriber: %d events, open %v, err %v", len(evs), open, slow.Err())
	}
	st := e.hub.Stats()
	if st.SlowDisconnects != 1 || st.Dropped == 0 {
		t.Errorf("stats %+v", st)
	}
	// It resumes from history where it left off.
	r := e.subscribe("epoch1-0", "t")
	if evs, _ := take(t, r, n); len(evs) != n {
		t.Errorf("resumed with %d events", len(evs))
	}
}

func TestCloseAndDisconnect(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	a := e.subscribe("", "a")
	ab := e.subscribe("", "a", "b")
	b := e.subscribe("", "b")
	for _, s := range []*hub.Subscription{a, ab, b} {
		take(t, s, 1)
	}
	if n := e.hub.Disconnect("a"); n != 2 {
		t.Errorf("Disconnect(a) = %d, want 2", n)
	}
	for _, s := range []*hub.Subscription{a, ab} {
		if _, open := take(t, s, 1); open || !errors.Is(s.Err(), hub.ErrKicked) || !hub.Graceful(s.Err()) {
			t.Errorf("kicked subscription: open %v err %v", open, s.Err())
		}
	}
	if _, open := pending(b); !open {
		t.Error("b was ended by Disconnect(a)")
	}

	// Close: queued events are still delivered, then the end.
	e.pub("last", "b")
	e.hub.Close()
	evs, open := take(t, b, 5)
	if descs(evs) != "last" || open || !errors.Is(b.Err(), hub.ErrClosed) {
		t.Errorf("after Close: %q open %v err %v", descs(evs), open, b.Err())
	}
	if _, err := e.hub.Subscribe(context.Background(), hub.Request{Topics: []string{"a"}}); !errors.Is(err, hub.ErrClosed) {
		t.Errorf("Subscribe after Close = %v", err)
	}
	e.hub.Close() // idempotent
}

// TestSubscriptionEnd: End ends one subscription cleanly once its queue is
// taken, and no other.
func TestSubscriptionEnd(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	a := e.subscribe("", "a")
	other := e.subscribe("", "a")
	for _, s := range []*hub.Subscription{a, other} {
		take(t, s, 1)
	}
	e.pub("queued", "a")
	a.End()
	a.End() // idempotent
	evs, open := take(t, a, 5)
	if descs(evs) != "queued" || open || !errors.Is(a.Err(), hub.ErrClosed) || !hub.Graceful(a.Err()) {
		t.Errorf("after End: %q open %v err %v", descs(evs), open, a.Err())
	}
	if _, open := take(t, other, 1); !open {
		t.Error("End ended another subscription")
	}
}

func TestDisconnectAll(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	e.subscribe("", "a")
	e.subscribe("", "b")
	if n := e.hub.Disconnect(""); n != 2 {
		t.Errorf("Disconnect(\"\") = %d", n)
	}
}

func TestEpochChangeEndsStreams(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	s := e.subscribe("", "a")
	e.hub.HandleEpoch("new")
	if _, open := take(t, s, 5); open || !errors.Is(s.Err(), hub.ErrEpochChanged) {
		t.Errorf("open %v err %v", open, s.Err())
	}
}

func TestStats(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	e.pub("1", "a")
	e.pub("2", "a")
	s1 := e.subscribe("epoch1-0", "a") // replays 2
	s2 := e.subscribe("", "a", "b")    // position marker
	counts := e.hub.TopicCounts()
	if counts["a"] != 2 || counts["b"] != 1 {
		t.Errorf("TopicCounts %v", counts)
	}
	take(t, s1, 2)
	take(t, s2, 1)
	e.pub("3", "a")
	take(t, s1, 1)
	take(t, s2, 1)
	st := e.hub.Stats()
	if st.Subscriptions != 2 || st.Published != 3 || st.Replayed != 2 || st.Delivered != 5 {
		t.Errorf("stats %+v", st)
	}
	s1.Close()
	s1.Close()
	s2.Close()
	if st := e.hub.Stats(); st.Subscriptions != 0 {
		t.Errorf("subscriptions after Close: %d", st.Subscriptions)
	}
	if counts := e.hub.TopicCounts(); len(counts) != 0 {
		t.Errorf("TopicCounts after Close: %v", counts)
	}
}

func TestValidation(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		m    *pubsub.Message
		want error
	}{
		{"no topic", &pubsub.Message{}, hub.ErrInvalidTopic},
		{"empty topic", &pubsub.Message{Topics: []string{""}}, hub.ErrInvalidTopic},
		{"control character", &pubsub.Message{Topics: []string{"a\x01"}}, hub.ErrInvalidTopic},
		{"long topic", &pubsub.Message{Topics: []string{strings.Repeat("x", hub.MaxTopicLen+1)}}, hub.ErrInvalidTopic},
		{"LF in type", &pubsub.Message{Topics: []string{"a"}, Type: "x\ny"}, hub.ErrInvalidMessage},
	} {
		if _, err := e.hub.Publish(ctx, tc.m); !errors.Is(err, tc.want) {
			t.Errorf("publish %s: %v, want %v", tc.name, err, tc.want)
		}
		if tc.want == hub.ErrInvalidTopic {
			if _, err := e.hub.Subscribe(ctx, hub.Request{Topics: tc.m.Topics}); !errors.Is(err, hub.ErrInvalidTopic) {
				t.Errorf("subscribe %s: %v", tc.name, err)
			}
		}
	}
	m := e.publish(&pubsub.Message{Topics: []string{"a", "b", "a"}, Data: "x"})
	if strings.Join(m.Topics, ",") != "a,b" {
		t.Errorf("duplicate topics kept: %v", m.Topics)
	}
	for _, ok := range []string{"a", strings.Repeat("x", hub.MaxTopicLen), "ünïcode/topic with spaces", "urn:x:y?z=1"} {
		if err := hub.ValidateTopic(ok); err != nil {
			t.Errorf("ValidateTopic(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"\x7f", "a\u0085b", "\xff", "a\nb", "tab\t"} {
		if err := hub.ValidateTopic(bad); !errors.Is(err, hub.ErrInvalidTopic) {
			t.Errorf("ValidateTopic(%q) = %v", bad, err)
		}
	}
}

// slowListener is a broker whose Listen takes effect late, as a remote
// broker's subscription does.
type slowListener struct {
	*memory.Broker
	delay time.Duration
}

func (s slowListener) Listen(ctx context.Context, h pubsub.Handler) error {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil
	}
	return s.Broker.Listen(ctx, h)
}

// Subscribe waits until the hub listens: a message published right after
// the first subscription is delivered live, not only on the next resume.
func TestSubscribeWaitsForListen(t *testing.T) {
	mb := memory.New(nil)
	defer mb.Close()
	h := hub.New(slowListener{mb, 100 * time.Millisecond}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() { cancel(); <-done }()

	s, err := h.Subscribe(context.Background(), hub.Request{Topics: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := h.Publish(context.Background(), &pubsub.Message{Topics: []string{"a"}, Data: "first"}); err != nil {
		t.Fatal(err)
	}
	if evs, _ := take(t, s, 2); descs(evs) != "pos:0 first" {
		t.Errorf("got %q", descs(evs))
	}
}

func TestSubscribeWaitingForListenEnds(t *testing.T) {
	// Fake time: the hub never runs, so a Subscribe waits for a Listen
	// that never takes effect until its context or the hub ends.
	synctest.Test(t, func(t *testing.T) {
		mb := memory.New(nil)
		defer mb.Close()
		h := hub.New(mb, nil) // never Run
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if _, err := h.Subscribe(ctx, hub.Request{Topics: []string{"a"}}); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Subscribe = %v, want DeadlineExceeded", err)
		}
		errc := make(chan error, 1)
		go func() {
			_, err := h.Subscribe(context.Background(), hub.Request{Topics: []string{"a"}})
			errc <- err
		}()
		synctest.Wait() // the Subscribe waits for the listen
		select {
		case err := <-errc:
			t.Fatalf("Subscribe returned %v before the hub closed", err)
		default:
		}
		h.Close()
		if err := <-errc; !errors.Is(err, hub.ErrClosed) {
			t.Errorf("Subscribe waiting when the hub closed = %v, want ErrClosed", err)
		}
	})
}

// TestExactHandOverUnderConcurrency publishes continuously while many
// subscribers repeatedly drop their subscription and resume from the last id
// they saw. Each must see every message of its topics exactly once, in order.
func TestExactHandOverUnderConcurrency(t *testing.T) {
	const (
		messages    = 3000
		subscribers = 100
	)
	e := newEnv(t, pubsub.Retention{}, nil)
	// Message i goes to x when i%3 != 1, to y when i%3 != 0.
	topicsOf := func(i int) []string {
		switch i % 3 {
		case 0:
			return []string{"x"}
		case 1:
			return []string{"y"}
		}
		return []string{"x", "y"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	var resubscribed atomic.Int64 // by all subscribers, so far
	errs := make(chan error, subscribers)
	for n := range subscribers {
		follows := [][]string{{"x"}, {"y"}, {"x", "y"}}[n%3]
		var want []int
		for i := range messages {
			for _, t := range topicsOf(i) {
				if strings.Contains(strings.Join(follows, ","), t) {
					want = append(want, i)
					break
				}
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- followWithReconnects(ctx, e.hub, follows, want, rand.New(rand.NewPCG(uint64(n), 1)), &resubscribed)
		}()
	}
	var before int64
	for i := range messages {
		if i%100 == 0 {
			before = resubscribed.Load()
		}
		if _, err := e.hub.Publish(ctx, &pubsub.Message{Topics: topicsOf(i), Data: strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			// Subscribers come and go mid-stream: each takes at most 60
			// events before it drops, and 100 messages hold at least 66
			// of each subscriber's, so some resume during each hundred.
			testkit.WaitFor(t, "a subscriber to resume mid-stream", func() bool { return resubscribed.Load() > before })
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func followWithReconnects(ctx context.Context, h *hub.Hub, topics []string, want []int, rnd *rand.Rand, resubscribed *atomic.Int64) error {
	var (
		got        []int
		lastID     = "epoch1-0" // from the start of the log
		reconnects int
	)
	for len(got) < len(want) {
		s, err := h.Subscribe(ctx, hub.Request{Topics: topics, LastEventID: lastID})
		if err != nil {
			return err
		}
		budget := 1 + rnd.IntN(60) // events to take before dropping
		var evs []*hub.Event
		for budget > 0 && len(got) < len(want) {
			select {
			case <-s.Ready():
			case <-ctx.Done():
				s.Close()
				return fmt.Errorf("%v: timed out with %d of %d messages after %d reconnects", topics, len(got), len(want), reconnects)
			}
			evs, _ = s.Pop(evs[:0])
			for _, ev := range evs {
				switch ev.Kind {
				case hub.KindReset:
					s.Close()
					return fmt.Errorf("%v: unexpected reset %+v", topics, ev.Reset)
				case hub.KindMessage:
					i, _ := strconv.Atoi(ev.Msg.Data)
					if len(got) >= len(want) || i != want[len(got)] {
						s.Close()
						return fmt.Errorf("%v: after %d messages (last id %s) got %d, want %v (reconnects %d)", topics, len(got), lastID, i, want[min(len(got), len(want)-1)], reconnects)
					}
					got = append(got, i)
				}
				lastID = ev.ID()
				budget--
			}
		}
		s.Close()
		reconnects++
		resubscribed.Add(1)
	}
	return nil
}

// TestSync: Sync returns once the hub has fanned out the message at a
// position, at once for one it has, with the context's error when it ends
// first, and at once for a position of another epoch.
func TestSync(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	e.subscribe("", "a") // Run listens: the hub gets what is published from now on
	m := e.pub("1", "a")
	ctx := context.Background()
	if err := e.hub.Sync(ctx, m.Pos); err != nil {
		t.Fatalf("Sync of a delivered message: %v", err)
	}
	next := pubsub.Position{Epoch: m.Pos.Epoch, Offset: m.Pos.Offset + 1}
	done := make(chan error, 1)
	go func() { done <- e.hub.Sync(ctx, next) }()
	select {
	case err := <-done:
		t.Fatalf("Sync of a message not published yet returned %v", err)
	default:
	}
	e.pub("2", "b")
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Sync: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Sync did not return after the message was delivered")
	}
	short, cancel := context.WithCancel(ctx)
	cancel()
	if err := e.hub.Sync(short, pubsub.Position{Epoch: m.Pos.Epoch, Offset: 99}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sync with an ended context: %v, want context.Canceled", err)
	}
	if err := e.hub.Sync(ctx, pubsub.Position{Epoch: "other", Offset: 99}); err != nil {
		t.Fatalf("Sync of another epoch: %v, want nil at once", err)
	}
}
