package memory_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

// These tests cover what is particular to the memory broker; the contract
// every broker keeps is checked by the conformance suite (conformance_test.go).

func newBroker(t *testing.T, o *memory.Options) *memory.Broker {
	t.Helper()
	b := memory.New(o)
	t.Cleanup(func() { b.Close() })
	return b
}

func publish(t *testing.T, b pubsub.Broker, data string, topics ...string) *pubsub.Message {
	t.Helper()
	m := &pubsub.Message{Topics: topics, Data: data}
	if _, err := b.Publish(context.Background(), m); err != nil {
		t.Fatalf("publish %q to %v: %v", data, topics, err)
	}
	return m
}

func read(t *testing.T, b pubsub.Broker, after *pubsub.Position, topics ...string) pubsub.Snapshot {
	t.Helper()
	snap, err := b.Read(context.Background(), pubsub.Query{Topics: topics, After: after})
	if err != nil {
		t.Fatalf("read %v after %v: %v", topics, after, err)
	}
	return snap
}

func at(b pubsub.Broker, off uint64) *pubsub.Position {
	return &pubsub.Position{Epoch: b.Epoch(), Offset: off}
}

func datas(ms []*pubsub.Message) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Data)
	}
	return strings.Join(s, ",")
}

func TestOrderingOneLogForAllTopics(t *testing.T) {
	b := newBroker(t, nil)
	var want []string
	for i := range 30 {
		topic := []string{"a", "b", "c"}[i%3]
		m := publish(t, b, fmt.Sprint(i), topic)
		if m.Pos.Offset != uint64(i+1) || m.Pos.Epoch != b.Epoch() || m.Time.IsZero() {
			t.Fatalf("message %d: pos %v time %v", i, m.Pos, m.Time)
		}
		if topic != "b" {
			want = append(want, fmt.Sprint(i))
		}
	}
	snap := read(t, b, at(b, 0), "c", "a")
	if got := datas(snap.Events); got != strings.Join(want, ",") {
		t.Errorf("events of a and c = %s, want %s", got, strings.Join(want, ","))
	}
	if snap.Head != *at(b, 30) || snap.Truncated || snap.EpochChanged {
		t.Errorf("snapshot %+v", snap)
	}
	if got := datas(read(t, b, at(b, 27), "a", "b", "c").Events); got != "27,28,29" {
		t.Errorf("after 27: %s", got)
	}
}

func TestMultiTopicMessageOnce(t *testing.T) {
	b := newBroker(t, nil)
	h := newRecorder()
	stop := listen(t, b, h)
	defer stop()
	publish(t, b, "1", "a")
	publish(t, b, "2", "a", "b", "c")
	publish(t, b, "3", "c")
	if got := datas(read(t, b, at(b, 0), "a", "b", "c").Events); got != "1,2,3" {
		t.Errorf("Read = %s, want 1,2,3", got)
	}
	if got := datas(read(t, b, at(b, 0), "b", "c").Events); got != "2,3" {
		t.Errorf("Read b,c = %s, want 2,3", got)
	}
	if got := datas(h.wait(t, 3)); got != "1,2,3" {
		t.Errorf("live = %s, want each message once", got)
	}
}

func TestRetentionMaxEventsIsPerTopic(t *testing.T) {
	b := newBroker(t, &memory.Options{Retention: pubsub.Retention{MaxEvents: 3}})
	for i := 1; i <= 6; i++ {
		publish(t, b, fmt.Sprint(i), "a") // offsets 1..6; 1,2,3 evicted
	}
	publish(t, b, "b1", "b") // offset 7
	for _, tc := range []struct {
		after     uint64
		topics    []string
		want      string
		truncated bool
	}{
		{0, []string{"a"}, "4,5,6", true},
		{2, []string{"a"}, "4,5,6", true},
		{3, []string{"a"}, "4,5,6", false}, // saw the last evicted one
		{5, []string{"a"}, "6", false},
		{0, []string{"b"}, "b1", false}, // a's evictions do not touch b
		{0, []string{"a", "b"}, "4,5,6,b1", true},
		{0, []string{"never"}, "", false},
	} {
		snap := read(t, b, at(b, tc.after), tc.topics...)
		if got := datas(snap.Events); got != tc.want || snap.Truncated != tc.truncated {
			t.Errorf("after %d %v: events %s truncated %v; want %s %v", tc.after, tc.topics, got, snap.Truncated, tc.want, tc.truncated)
		}
	}
	if st := b.Stats(); st.Messages != 4 || st.Topics != 2 {
		t.Errorf("stats %+v, want 4 messages in 2 topics", st)
	}
}

func TestRetentionMaxEventsSharedMessage(t *testing.T) {
	// A message of two topics stays while one of them holds it.
	b := newBroker(t, &memory.Options{Retention: pubsub.Retention{MaxEvents: 1}})
	publish(t, b, "ab", "a", "b") // 1
	publish(t, b, "a2", "a")      // 2: evicts 1 from a only
	if got := datas(read(t, b, at(b, 0), "b").Events); got != "ab" {
		t.Errorf("b = %q, want ab", got)
	}
	// Truncation is tracked per topic: a lost offset 1, so a client of a
	// and b is told so, although b still holds that message (a spurious
	// reset, never a gap).
	snap := read(t, b, at(b, 0), "a", "b")
	if got := datas(snap.Events); got != "ab,a2" || !snap.Truncated {
		t.Errorf("a,b = %q truncated %v; want ab,a2 truncated", got, snap.Truncated)
	}
	if st := b.Stats(); st.Messages != 2 {
		t.Errorf("stats %+v, want 2 messages", st)
	}
}

func TestRetentionMaxBytes(t *testing.T) {
	one := (&pubsub.Message{Topics: []string{"a"}, Data: strings.Repeat("x", 100), Pos: pubsub.Position{Epoch: "0123456789"}}).Size()
	b := newBroker(t, &memory.Options{Epoch: "0123456789", Retention: pubsub.Retention{MaxBytes: int64(3 * one)}})
	for i := range 5 {
		topic := []string{"a", "b"}[i%2] // a:1,3,5 b:2,4
		publish(t, b, strings.Repeat("x", 99)+fmt.Sprint(i), topic)
	}
	st := b.Stats()
	if st.Messages != 3 || st.Bytes > int64(3*one) {
		t.Fatalf("stats %+v, want 3 messages within %d bytes", st, 3*one)
	}
	for _, tc := range []struct {
		after     uint64
		topic     string
		n         int
		truncated bool
	}{
		{0, "a", 2, true},  // lost 1
		{1, "a", 2, false}, // has 3,5
		{0, "b", 1, true},  // lost 2
		{2, "b", 1, false},
	} {
		snap := read(t, b, at(b, tc.after), tc.topic)
		if len(snap.Events) != tc.n || snap.Truncated != tc.truncated {
			t.Errorf("after %d %s: %d events truncated %v; want %d %v", tc.after, tc.topic, len(snap.Events), snap.Truncated, tc.n, tc.truncated)
		}
	}
}

func TestRetentionMaxAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := memory.New(&memory.Options{Retention: pubsub.Retention{MaxAge: time.Minute}, SweepInterval: time.Second})
		defer b.Close()
		publish(t, b, "old", "a")   // 1
		publish(t, b, "old-b", "b") // 2
		time.Sleep(40 * time.Second)
		publish(t, b, "new", "a") // 3
		time.Sleep(30 * time.Second)
		synctest.Wait()

		snap := read(t, b, at(b, 0), "a")
		if got := datas(snap.Events); got != "new" || !snap.Truncated {
			t.Errorf("a after 70s: %q truncated %v; want new, truncated", got, snap.Truncated)
		}
		if snap := read(t, b, at(b, 1), "a"); snap.Truncated {
			t.Errorf("a after 1: truncated, but the client saw the evicted message")
		}
		// b aged out entirely and was forgotten; its tombstone is exact.
		if st := b.Stats(); st.Topics != 1 || st.Messages != 1 {
			t.Errorf("stats %+v, want b forgotten", st)
		}
		if snap := read(t, b, at(b, 1), "b"); !snap.Truncated || len(snap.Events) != 0 {
			t.Errorf("b after 1: %+v, want truncated", snap)
		}
		if snap := read(t, b, at(b, 2), "b"); snap.Truncated {
			t.Errorf("b after 2: truncated, but the client saw b's only message")
		}
		// A topic that never had a message is not truncated by others' loss.
		if snap := read(t, b, at(b, 0), "never"); snap.Truncated {
			t.Errorf("unknown topic reported truncated")
		}
		// b comes back with its tombstone's offset.
		publish(t, b, "b-again", "b") // 4
		if snap := read(t, b, at(b, 1), "b"); !snap.Truncated || datas(snap.Events) != "b-again" {
			t.Errorf("b reborn after 1: %+v", snap)
		}
		if snap := read(t, b, at(b, 2), "b"); snap.Truncated || datas(snap.Events) != "b-again" {
			t.Errorf("b reborn after 2: %+v", snap)
		}
	})
}

func TestIdleSubscriberOfQuietTopicIsNotTruncated(t *testing.T) {
	// A client that followed a quiet topic for longer than MaxAge, while
	// other topics came and went, resumes without a spurious reset.
	synctest.Test(t, func(t *testing.T) {
		b := memory.New(&memory.Options{Retention: pubsub.Retention{MaxAge: time.Minute}, SweepInterval: time.Second})
		defer b.Close()
		pos := read(t, b, nil, "quiet").Head
		for i := range 10 {
			publish(t, b, "x", fmt.Sprintf("busy-%d", i))
			time.Sleep(30 * time.Second)
		}
		synctest.Wait()
		if snap := read(t, b, &pos, "quiet"); snap.Truncated {
			t.Errorf("quiet topic reported truncated after other topics were forgotten")
		}
	})
}

func TestTombstoneLimit(t *testing.T) {
	b := newBroker(t, &memory.Options{MaxTombstones: 2})
	for _, topic := range []string{"t1", "t2", "t3"} {
		publish(t, b, "x", topic) // offsets 1, 2, 3
		if err := b.Purge(context.Background(), topic); err != nil {
			t.Fatal(err)
		}
	}
	// t1's tombstone (offset 1) was folded into the watermark; t2 (2) and
	// t3 (3) keep theirs.
	for _, tc := range []struct {
		topic     string
		after     uint64
		truncated bool
	}{
		{"t3", 2, true}, {"t3", 3, false},
		{"t2", 1, true}, {"t2", 2, false},
		{"t1", 0, true}, {"t1", 1, false},
		{"unknown", 0, true}, // coarse: the watermark applies
		{"unknown", 1, false},
	} {
		if snap := read(t, b, at(b, tc.after), tc.topic); snap.Truncated != tc.truncated {
			t.Errorf("%s after %d: truncated %v, want %v", tc.topic, tc.after, snap.Truncated, tc.truncated)
		}
	}
}

func TestEpoch(t *testing.T) {
	b := newBroker(t, &memory.Options{Epoch: "fixed_1"})
	if b.Epoch() != "fixed_1" {
		t.Fatalf("epoch %q", b.Epoch())
	}
	publish(t, b, "1", "a")
	publish(t, b, "2", "a")
	other := newBroker(t, nil)
	if other.Epoch() == b.Epoch() || !pubsub.ValidEpoch(other.Epoch()) {
		t.Fatalf("new broker epoch %q", other.Epoch())
	}
	snap := read(t, b, &pubsub.Position{Epoch: other.Epoch(), Offset: 1}, "a")
	if !snap.EpochChanged || datas(snap.Events) != "1,2" {
		t.Errorf("other epoch: %+v, want EpochChanged and the whole history", snap)
	}
	if snap := read(t, b, at(b, 1), "a"); snap.EpochChanged || datas(snap.Events) != "2" {
		t.Errorf("same epoch: %+v", snap)
	}
}

func TestRetained(t *testing.T) {
	b := newBroker(t, &memory.Options{Retention: pubsub.Retention{MaxEvents: 1}})
	pub := func(data string, retain bool, topics ...string) {
		t.Helper()
		if _, err := b.Publish(context.Background(), &pubsub.Message{Topics: topics, Data: data, Retain: retain}); err != nil {
			t.Fatal(err)
		}
	}
	pub("a1", true, "a")
	pub("b1", true, "b")
	pub("a2", true, "a")
	pub("ab", true, "a", "b") // now the retained message of both
	pub("c1", true, "c")
	pub("a3", false, "a") // not retained: a's retained stays "ab"
	pub("c2", false, "c") // evicts c1 from history, but it stays retained

	snap := read(t, b, nil, "c", "b", "a", "z")
	if got := datas(snap.Retained); got != "ab,c1" {
		t.Errorf("retained = %s, want ab,c1 (once each, in position order)", got)
	}
	if len(snap.Events) != 0 || snap.Head.Offset != 7 {
		t.Errorf("new subscriber snapshot %+v: want no history, head 7", snap)
	}
	if snap := read(t, b, at(b, 5), "a"); len(snap.Retained) != 0 {
		t.Errorf("a subscriber resuming exactly got retained messages %s", datas(snap.Retained))
	}
	if snap := read(t, b, at(b, 0), "a"); !snap.Truncated || datas(snap.Retained) != "ab" {
		t.Errorf("a subscriber whose history was truncated: Truncated=%v retained %s, want true and ab", snap.Truncated, datas(snap.Retained))
	}
}

func TestFinal(t *testing.T) {
	b := newBroker(t, nil)
	publish(t, b, "1", "a")
	fin := &pubsub.Message{Topics: []string{"a"}, Data: "end", Final: true}
	if _, err := b.Publish(context.Background(), fin); err != nil {
		t.Fatal(err)
	}
	for _, topics := range [][]string{{"a"}, {"b", "a"}} {
		_, err := b.Publish(context.Background(), &pubsub.Message{Topics: topics, Data: "late"})
		if !errors.Is(err, pubsub.ErrTopicFinished) {
			t.Errorf("publish to %v after final: %v, want ErrTopicFinished", topics, err)
		}
	}
	publish(t, b, "b1", "b") // b is not finished
	snap := read(t, b, at(b, 0), "a", "b")
	if datas(snap.Events) != "1,end,b1" || snap.Finals["a"] != fin.Pos || len(snap.Finals) != 1 {
		t.Errorf("snapshot %+v", snap)
	}
	if snap := read(t, b, nil, "a"); snap.Finals["a"] != fin.Pos {
		t.Errorf("new subscriber: finals %v", snap.Finals)
	}
}

func TestFinishedTopicForgottenAfterMaxAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := memory.New(&memory.Options{Retention: pubsub.Retention{MaxAge: time.Minute}})
		defer b.Close()
		fin := &pubsub.Message{Topics: []string{"job"}, Data: "done", Final: true}
		if _, err := b.Publish(context.Background(), fin); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if snap := read(t, b, nil, "job"); len(snap.Finals) != 0 {
			t.Fatalf("finished topic still known after MaxAge: %+v", snap)
		}
		// A client that had not seen the final is told it lost history.
		if snap := read(t, b, at(b, 0), "job"); !snap.Truncated {
			t.Errorf("client before the final: not truncated")
		}
		if snap := read(t, b, at(b, 1), "job"); snap.Truncated {
			t.Errorf("client that saw the final: truncated")
		}
		publish(t, b, "again", "job") // the name may be used again
	})
}

func TestPurge(t *testing.T) {
	b := newBroker(t, nil)
	publish(t, b, "1", "a")
	if _, err := b.Publish(context.Background(), &pubsub.Message{Topics: []string{"a"}, Data: "r", Retain: true, Final: true}); err != nil {
		t.Fatal(err)
	}
	publish(t, b, "b", "b")
	if err := b.Purge(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if err := b.Purge(context.Background(), "nothing"); err != nil {
		t.Fatal(err)
	}
	snap := read(t, b, nil, "a")
	if len(snap.Retained) != 0 || len(snap.Finals) != 0 {
		t.Errorf("after purge: retained %s finals %v", datas(snap.Retained), snap.Finals)
	}
	if snap := read(t, b, at(b, 1), "a"); !snap.Truncated || len(snap.Events) != 0 {
		t.Errorf("client from before the purge: %+v, want truncated", snap)
	}
	if snap := read(t, b, at(b, 3), "a"); snap.Truncated {
		t.Errorf("client at the head of the purge: truncated")
	}
	if got := datas(read(t, b, at(b, 0), "b").Events); got != "b" {
		t.Errorf("other topic after purge: %q", got)
	}
	publish(t, b, "new", "a") // no longer finished
	if st := b.Stats(); st.Messages != 2 || st.Topics != 2 {
		t.Errorf("stats %+v", st)
	}
}

type recorder struct {
	mu     sync.Mutex
	msgs   []*pubsub.Message
	epochs []string
	ch     chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 1)} }

func (r *recorder) HandleMessage(m *pubsub.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *recorder) HandleEpoch(e string) {
	r.mu.Lock()
	r.epochs = append(r.epochs, e)
	r.mu.Unlock()
}

func (r *recorder) wait(t *testing.T, n int) []*pubsub.Message {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		got := slices.Clone(r.msgs)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.ch:
		case <-timeout:
			t.Fatalf("got %d messages, want %d", len(got), n)
		}
	}
}

// listen runs Listen until stop is called, after it took effect.
func listen(t *testing.T, b *memory.Broker, h pubsub.Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	sh := startSignal(h)
	go func() { done <- b.Listen(ctx, sh) }()
	select {
	case <-sh.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("HandleStart not called after Listen")
	}
	return func() error {
		cancel()
		return <-done
	}
}

func TestListenAndClose(t *testing.T) {
	b := memory.New(nil)
	h := newRecorder()
	stop := listen(t, b, h)
	for i := range 100 {
		publish(t, b, fmt.Sprint(i), fmt.Sprint("t", i%7))
	}
	got := h.wait(t, 100)
	for i, m := range got {
		if m.Pos.Offset != uint64(i+1) {
			t.Fatalf("live message %d at offset %d: out of order", i, m.Pos.Offset)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Listen after cancel = %v, want nil", err)
	}
	publish(t, b, "unheard", "t0")
	if n := len(h.wait(t, 100)); n != 100 {
		t.Errorf("handler got a message after Listen returned")
	}

	// Close ends a running Listen and makes every later call fail.
	done := make(chan error, 1)
	sh := startSignal(h)
	go func() { done <- b.Listen(context.Background(), sh) }()
	<-sh.ch
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Listen after Close = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Listen did not return after Close")
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	ctx := context.Background()
	if _, err := b.Publish(ctx, &pubsub.Message{Topics: []string{"a"}}); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Publish after Close = %v", err)
	}
	if _, err := b.Read(ctx, pubsub.Query{Topics: []string{"a"}}); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Read after Close = %v", err)
	}
	if err := b.Listen(ctx, h); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Listen after Close = %v", err)
	}
}

func TestPublishErrors(t *testing.T) {
	b := newBroker(t, nil)
	if _, err := b.Publish(context.Background(), &pubsub.Message{Data: "x"}); err == nil {
		t.Error("publish without topic accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Publish(ctx, &pubsub.Message{Topics: []string{"a"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("publish with cancelled ctx = %v", err)
	}
	if _, err := b.Read(ctx, pubsub.Query{Topics: []string{"a"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("read with cancelled ctx = %v", err)
	}
	if st := b.Stats(); st.Messages != 0 {
		t.Errorf("stats %+v after failed publishes", st)
	}
}

// started passes a Handler's calls on, and closes ch when Listen calls
// HandleStart.
type started struct {
	pubsub.Handler
	ch chan struct{}
}

func startSignal(h pubsub.Handler) started { return started{h, make(chan struct{})} }

func (s started) HandleStart(pubsub.Position) { close(s.ch) }
