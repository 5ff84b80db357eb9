package pubsubtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
)

// Listener is a pubsub.Handler (and pubsub.StartHandler) that records what
// Listen delivers, for a broker's own tests to wait on. Its methods are
// safe for concurrent use; the zero value is not ready, use NewListener.
type Listener struct {
	mu      sync.Mutex
	msgs    []*pubsub.Message
	epochs  []string
	started bool          // HandleStart was called: Listen took effect
	change  chan struct{} // a token when something was recorded
}

// NewListener returns an empty Listener.
func NewListener() *Listener { return &Listener{change: make(chan struct{}, 1)} }

// HandleMessage records m.
func (l *Listener) HandleMessage(m *pubsub.Message) {
	l.mu.Lock()
	l.msgs = append(l.msgs, m)
	l.mu.Unlock()
	l.signal()
}

// HandleEpoch records e.
func (l *Listener) HandleEpoch(e string) {
	l.mu.Lock()
	l.epochs = append(l.epochs, e)
	l.mu.Unlock()
	l.signal()
}

// HandleStart records that Listen took effect (see Settle).
func (l *Listener) HandleStart(pubsub.Position) {
	l.mu.Lock()
	l.started = true
	l.mu.Unlock()
	l.signal()
}

// signal leaves a token in l.change unless one is there already: a waiter
// that checked its condition before the change finds it.
func (l *Listener) signal() {
	select {
	case l.change <- struct{}{}:
	default:
	}
}

// Messages returns a copy of the messages recorded, in delivery order.
func (l *Listener) Messages() []*pubsub.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*pubsub.Message(nil), l.msgs...)
}

// LastPos returns the position of the last message recorded (zero: none).
func (l *Listener) LastPos() pubsub.Position {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.msgs) == 0 {
		return pubsub.Position{}
	}
	return l.msgs[len(l.msgs)-1].Pos
}

// Epochs returns a copy of the epochs recorded (HandleEpoch), in order.
func (l *Listener) Epochs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.epochs...)
}

// Wait waits until cond holds, checking it again after each thing
// recorded; the test fails, saying it waited for what, after 20 s. cond
// reads the listener through Messages and Epochs.
func (l *Listener) Wait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-l.change:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Settle waits until the listener took effect (HandleStart): every message
// published from then on, on any node, reaches it.
func (l *Listener) Settle(t testing.TB) {
	t.Helper()
	l.Wait(t, "the listener to take effect (HandleStart)", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.started
	})
}

// Listen runs b.Listen with h until the test ends; then it cancels Listen
// and fails the test if Listen does not return nil.
func Listen(t testing.TB, b pubsub.Broker, h pubsub.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Listen(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Listen: %v", err)
		}
	})
}
