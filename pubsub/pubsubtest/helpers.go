package pubsubtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
)

// probeTopic is the topic of the messages the suite publishes to learn that
// a listener is receiving.
const probeTopic = "pubsubtest.probe"

// open opens a fresh broker that is closed when the test ends.
func (s *suite) open(t *testing.T, r pubsub.Retention) pubsub.Broker {
	t.Helper()
	b := s.newBroker(t, r)
	if b == nil {
		t.Fatal("pubsubtest: newBroker returned nil")
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// publish publishes a message and fails the test on error.
func publish(t *testing.T, b pubsub.Broker, m *pubsub.Message) *pubsub.Message {
	t.Helper()
	pos, err := b.Publish(context.Background(), m)
	if err != nil {
		t.Fatalf("Publish(%v): %v", m.Topics, err)
	}
	if pos != m.Pos {
		t.Fatalf("Publish returned %v but set m.Pos to %v", pos, m.Pos)
	}
	return m
}

// msg returns a message for topics with data.
func msg(data string, topics ...string) *pubsub.Message {
	return &pubsub.Message{Topics: topics, Data: data}
}

// read reads a snapshot and fails the test on error.
func read(t *testing.T, b pubsub.Broker, after *pubsub.Position, topics ...string) pubsub.Snapshot {
	t.Helper()
	snap, err := b.Read(context.Background(), pubsub.Query{Topics: topics, After: after})
	if err != nil {
		t.Fatalf("Read(%v after %v): %v", topics, after, err)
	}
	return snap
}

func at(epoch string, off uint64) *pubsub.Position {
	return &pubsub.Position{Epoch: epoch, Offset: off}
}

// head returns the broker's current head.
func head(t *testing.T, b pubsub.Broker) pubsub.Position {
	t.Helper()
	return read(t, b, nil, probeTopic).Head
}

// sameMessage reports how got differs from want, or "".
func sameMessage(got, want *pubsub.Message) string {
	var d []string
	if got == nil {
		return "missing"
	}
	if got.Pos != want.Pos {
		d = append(d, fmt.Sprintf("Pos %v, want %v", got.Pos, want.Pos))
	}
	if !slices.Equal(got.Topics, want.Topics) {
		d = append(d, fmt.Sprintf("Topics %q, want %q", got.Topics, want.Topics))
	}
	if got.Type != want.Type {
		d = append(d, fmt.Sprintf("Type %q, want %q", got.Type, want.Type))
	}
	if got.Data != want.Data {
		d = append(d, fmt.Sprintf("Data %q, want %q", got.Data, want.Data))
	}
	if got.Retain != want.Retain || got.Final != want.Final || got.Private != want.Private {
		d = append(d, fmt.Sprintf("Retain/Final/Private %v/%v/%v, want %v/%v/%v",
			got.Retain, got.Final, got.Private, want.Retain, want.Final, want.Private))
	}
	if got.Time.IsZero() {
		d = append(d, "Time is zero")
	}
	return strings.Join(d, "; ")
}

// checkMessages fails the test unless got and want are the same messages in
// the same order.
func checkMessages(t *testing.T, what string, got, want []*pubsub.Message) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d messages %v, want %d %v", what, len(got), offsets(got), len(want), offsets(want))
		return
	}
	for i := range got {
		if d := sameMessage(got[i], want[i]); d != "" {
			t.Errorf("%s: message %d: %s", what, i, d)
			return
		}
	}
}

func offsets(ms []*pubsub.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Pos.Offset
	}
	return out
}

// withTopic returns the messages of ms that have one of topics, in order.
func withTopic(ms []*pubsub.Message, topics ...string) []*pubsub.Message {
	var out []*pubsub.Message
	for _, m := range ms {
		if slices.ContainsFunc(topics, m.HasTopic) {
			out = append(out, m)
		}
	}
	return out
}

// recorder is a pubsub.Handler that records what it receives and fans it
// out to registered buffers, as the hub does.
type recorder struct {
	inCall atomic.Int32

	mu       sync.Mutex
	starts   []pubsub.Position // HandleStart calls
	msgs     []*pubsub.Message
	epochs   []string
	problems []string
	subs     map[*liveBuffer]struct{}
	changed  chan struct{} // closed and replaced whenever msgs grows
}

// liveBuffer collects the live messages of some topics for one simulated
// subscriber.
type liveBuffer struct {
	topics []string
	msgs   []*pubsub.Message // guarded by recorder.mu
}

func newRecorder() *recorder {
	return &recorder{subs: make(map[*liveBuffer]struct{}), changed: make(chan struct{})}
}

func (r *recorder) HandleMessage(m *pubsub.Message) {
	if r.inCall.Add(1) > 1 {
		r.problem("HandleMessage called concurrently")
	}
	defer r.inCall.Add(-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.starts) == 0 {
		r.problems = append(r.problems, "HandleMessage before HandleStart")
	} else if st := r.starts[len(r.starts)-1]; st.Epoch == m.Pos.Epoch && m.Pos.Offset <= st.Offset {
		r.problems = append(r.problems, fmt.Sprintf("HandleMessage: position %v at or before the head %v given to HandleStart", m.Pos, st))
	}
	if n := len(r.msgs); n > 0 {
		prev := r.msgs[n-1].Pos
		if prev.Epoch == m.Pos.Epoch && m.Pos.Offset <= prev.Offset {
			r.problems = append(r.problems, fmt.Sprintf("HandleMessage: position %v after %v (not increasing)", m.Pos, prev))
		}
	}
	if m.Pos.Epoch == "" || m.Pos.Offset == 0 || m.Time.IsZero() {
		r.problems = append(r.problems, fmt.Sprintf("HandleMessage: message without position or time: %+v", m))
	}
	r.msgs = append(r.msgs, m)
	for lb := range r.subs {
		if slices.ContainsFunc(lb.topics, m.HasTopic) {
			lb.msgs = append(lb.msgs, m)
		}
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// HandleStart records where Listen started.
func (r *recorder) HandleStart(head pubsub.Position) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if head.Epoch == "" {
		r.problems = append(r.problems, "HandleStart with an empty epoch")
	}
	r.starts = append(r.starts, head)
	close(r.changed)
	r.changed = make(chan struct{})
}

// started waits until HandleStart was called n times and returns the last
// head it was given.
func (r *recorder) started(t *testing.T, n int, timeout time.Duration) pubsub.Position {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		got := len(r.starts)
		var head pubsub.Position
		if got > 0 {
			head = r.starts[got-1]
		}
		ch := r.changed
		r.mu.Unlock()
		if got > n {
			t.Fatalf("HandleStart called %d times, want %d", got, n)
		}
		if got == n {
			return head
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("HandleStart called %d times within %v, want %d", got, timeout, n)
		}
	}
}

func (r *recorder) HandleEpoch(epoch string) {
	r.mu.Lock()
	r.epochs = append(r.epochs, epoch)
	r.mu.Unlock()
}

// epochCalls returns the epochs HandleEpoch was called with so far.
func (r *recorder) epochCalls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.epochs)
}

func (r *recorder) problem(p string) {
	r.mu.Lock()
	r.problems = append(r.problems, p)
	r.mu.Unlock()
}

// register adds a live buffer for topics, before a snapshot is read.
func (r *recorder) register(topics []string) *liveBuffer {
	lb := &liveBuffer{topics: topics}
	r.mu.Lock()
	r.subs[lb] = struct{}{}
	r.mu.Unlock()
	return lb
}

// take unregisters lb and returns what it collected.
func (r *recorder) take(lb *liveBuffer) []*pubsub.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.subs, lb)
	return lb.msgs
}

// messages returns what was received so far, probes excluded.
func (r *recorder) messages() []*pubsub.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*pubsub.Message
	for _, m := range r.msgs {
		if !m.HasTopic(probeTopic) {
			out = append(out, m)
		}
	}
	return out
}

// waitFor waits until the recorder has received the message at pos (or a
// later one of the same epoch).
func (r *recorder) waitFor(t *testing.T, pos pubsub.Position, timeout time.Duration) bool {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := false
		if n := len(r.msgs); n > 0 {
			last := r.msgs[n-1].Pos
			ok = last.Epoch == pos.Epoch && last.Offset >= pos.Offset
		}
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// check reports the problems the recorder saw.
func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		t.Error(p)
	}
}

// listen starts b.Listen with a recorder and returns once the recorder
// receives messages (a probe published after Listen started arrived). When
// the test ends it cancels Listen and checks that it returns nil.
func (s *suite) listen(t *testing.T, b pubsub.Broker, pub pubsub.Broker) *recorder {
	t.Helper()
	rec := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Listen(ctx, rec) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Listen returned %v after its context ended, want nil", err)
			}
		case <-time.After(s.o.Wait):
			t.Errorf("Listen did not return within %v after its context ended", s.o.Wait)
		}
		rec.check(t)
	})
	s.waitListening(t, rec, pub, done)
	return rec
}

// waitListening publishes probes on pub until rec receives one.
func (s *suite) waitListening(t *testing.T, rec *recorder, pub pubsub.Broker, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(s.o.Wait)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("Listen returned early: %v", err)
		default:
		}
		p := publish(t, pub, msg("probe", probeTopic))
		if rec.waitFor(t, p.Pos, 200*time.Millisecond) {
			return
		}
	}
	t.Fatalf("Listen: no message received within %v", s.o.Wait)
}

// eventually polls cond until it returns "" or the time runs out, and fails
// the test with cond's last answer.
func eventually(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, why)
		}
		<-tick.C
	}
}
