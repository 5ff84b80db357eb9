package pubsubtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldpush/herald/pubsub"
)

// testCancellation: Publish and Read with an ended context return its error
// and change nothing.
func (s *suite) testCancellation(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	publish(t, b, msg("before", "cx"))
	h := head(t, b)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Publish(ctx, msg("cancelled", "cx")); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := b.Read(ctx, pubsub.Query{Topics: []string{"cx"}, After: at(b.Epoch(), 0)}); !errors.Is(err, context.Canceled) {
		t.Errorf("Read with a cancelled context: %v, want context.Canceled", err)
	}
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer dcancel()
	if _, err := b.Publish(dctx, msg("late", "cx")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Publish past its deadline: %v, want context.DeadlineExceeded", err)
	}
	if got := head(t, b); got != h {
		t.Errorf("Head moved from %v to %v: a publish with an ended context was stored", h, got)
	}
	// The broker still works.
	publish(t, b, msg("after", "cx"))
}

// testListenCancel: Listen returns nil when its context ends, whether it
// ended before the call or during it.
func (s *suite) testListenCancel(t *testing.T) {
	t.Run("before", func(t *testing.T) {
		b := s.open(t, pubsub.Retention{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- b.Listen(ctx, newRecorder()) }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Listen with a cancelled context: %v, want nil", err)
			}
		case <-time.After(s.o.Wait):
			t.Fatalf("Listen with a cancelled context did not return within %v", s.o.Wait)
		}
	})
	t.Run("during", func(t *testing.T) {
		b := s.open(t, pubsub.Retention{})
		rec := newRecorder()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- b.Listen(ctx, rec) }()
		s.waitListening(t, rec, b, done)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Listen after its context ended: %v, want nil", err)
			}
		case <-time.After(s.o.Wait):
			t.Fatalf("Listen did not return within %v after its context ended", s.o.Wait)
		}
		// The broker still publishes and reads.
		m := publish(t, b, msg("after", "lc"))
		checkMessages(t, "Read after Listen ended", read(t, b, at(b.Epoch(), 0), "lc").Events, []*pubsub.Message{m})
		rec.check(t)
	})
}

// testListenAgain: Listen starts where the log stands when it takes effect
// (HandleStart tells the head; nothing at or before it is delivered, every
// message after it is), and may be called again after it returned: the
// second call starts at the head of then, delivering none of what was
// published in between.
func (s *suite) testListenAgain(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	publish(t, b, msg("before", "la"))
	rec := newRecorder()
	for round := 1; round <= 2; round++ {
		gap := publish(t, b, msg(fmt.Sprint("between ", round), "la"))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Listen(ctx, rec) }()
		head := rec.started(t, round, s.o.Wait)
		if head.Epoch != gap.Pos.Epoch || head.Offset < gap.Pos.Offset {
			t.Fatalf("round %d: HandleStart(%v), want a head at or after %v", round, head, gap.Pos)
		}
		m := publish(t, b, msg(fmt.Sprint("live ", round), "la"))
		if !rec.waitFor(t, m.Pos, s.o.Wait) {
			t.Fatalf("round %d: the message published after HandleStart did not arrive", round)
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("round %d: Listen returned %v, want nil", round, err)
			}
		case <-time.After(s.o.Wait):
			t.Fatalf("round %d: Listen did not return within %v after its context ended", round, s.o.Wait)
		}
	}
	var got []string
	for _, m := range rec.messages() {
		got = append(got, m.Data)
	}
	if !slices.Equal(got, []string{"live 1", "live 2"}) {
		t.Errorf("delivered %q, want only what was published after each start", got)
	}
	rec.check(t)
}

// testClose: Close ends Listen; afterwards Publish, Read and Listen fail
// with ErrClosed; Close may be called again.
func (s *suite) testClose(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	rec := newRecorder()
	done := make(chan error, 1)
	go func() { done <- b.Listen(context.Background(), rec) }()
	s.waitListening(t, rec, b, done)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, pubsub.ErrClosed) {
			t.Errorf("Listen after Close: %v, want nil or ErrClosed", err)
		}
	case <-time.After(s.o.Wait):
		t.Fatalf("Listen did not return within %v after Close", s.o.Wait)
	}
	if _, err := b.Publish(context.Background(), msg("x", "cl")); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if _, err := b.Read(context.Background(), pubsub.Query{Topics: []string{"cl"}}); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil && !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("second Close: %v, want nil or ErrClosed", err)
	}
	rec.check(t)

	b2 := s.open(t, pubsub.Retention{})
	if err := b2.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	done2 := make(chan error, 1)
	go func() { done2 <- b2.Listen(context.Background(), newRecorder()) }()
	select {
	case err := <-done2:
		if !errors.Is(err, pubsub.ErrClosed) {
			t.Errorf("Listen on a closed broker: %v, want ErrClosed", err)
		}
	case <-time.After(s.o.Wait):
		t.Fatalf("Listen on a closed broker did not return within %v", s.o.Wait)
	}
}

// testLeaks: a broker that was used in every way (all kinds of retention,
// Listen, Read, Publish) leaves no goroutine behind once closed and its
// test's cleanups have run.
func (s *suite) testLeaks(t *testing.T) {
	if s.o.SkipLeakCheck {
		t.Skip("Options.SkipLeakCheck")
	}
	opts := []goleak.Option{goleak.IgnoreCurrent()}
	for _, f := range s.o.LeakIgnore {
		opts = append(opts, goleak.IgnoreAnyFunction(f))
	}
	// Registered first, so it runs after every other cleanup of this test
	// (the suite's Close and the NewBroker's own cleanups).
	t.Cleanup(func() {
		if err := goleak.Find(opts...); err != nil {
			t.Errorf("goroutines left after the broker was closed: %v", err)
		}
	})
	b := s.open(t, pubsub.Retention{MaxEvents: 10, MaxAge: time.Minute, MaxBytes: 1 << 20})
	rec := s.listen(t, b, b)
	var last *pubsub.Message
	for i := range 20 {
		last = publish(t, b, msg(fmt.Sprint(i), "lk"))
	}
	read(t, b, at(b.Epoch(), 0), "lk")
	if !rec.waitFor(t, last.Pos, s.o.Wait) {
		t.Fatalf("Listen: last message not received within %v", s.o.Wait)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	_, _ = b.Publish(ctx, msg("expired", "lk"))
	_, _ = b.Read(ctx, pubsub.Query{Topics: []string{"lk"}})
}

// testReopen: a broker reopened over the same storage has the same epoch,
// history, retained and final state, and goes on from its head.
func (s *suite) testReopen(t *testing.T) {
	if s.o.Reopen == nil {
		t.Skip("no Options.Reopen")
	}
	b := s.open(t, pubsub.Retention{})
	e := b.Epoch()
	var all []*pubsub.Message
	for i := range 10 {
		all = append(all, publish(t, b, msg(fmt.Sprint(i), "ro", fmt.Sprintf("ro%d", i%2))))
	}
	r := msg("state", "ro-state")
	r.Retain = true
	publish(t, b, r)
	f := msg("end", "ro-final")
	f.Final = true
	publish(t, b, f)
	h := head(t, b)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	b2 := s.o.Reopen(t, b)
	if b2 == nil {
		t.Fatal("Reopen returned nil")
	}
	t.Cleanup(func() { _ = b2.Close() })
	if b2.Epoch() != e {
		t.Fatalf("epoch after reopening: %q, want %q", b2.Epoch(), e)
	}
	if got := head(t, b2); got != h {
		t.Errorf("Head after reopening: %v, want %v", got, h)
	}
	snap := read(t, b2, at(e, 0), "ro")
	checkMessages(t, "history after reopening", snap.Events, all)
	if snap.Truncated || snap.EpochChanged {
		t.Errorf("after reopening: Truncated=%v EpochChanged=%v, want false", snap.Truncated, snap.EpochChanged)
	}
	snap = read(t, b2, at(e, all[4].Pos.Offset), "ro1")
	checkMessages(t, "resume after reopening", snap.Events, withTopic(all[5:], "ro1"))
	snap = read(t, b2, nil, "ro-state", "ro-final")
	checkMessages(t, "retained after reopening", snap.Retained, []*pubsub.Message{r})
	if snap.Finals["ro-final"] != f.Pos || len(snap.Finals) != 1 {
		t.Errorf("Finals after reopening: %v, want ro-final at %v", snap.Finals, f.Pos)
	}
	if _, err := b2.Publish(context.Background(), msg("late", "ro-final")); !isFinished(err) {
		t.Errorf("Publish to a finished topic after reopening: %v, want ErrTopicFinished", err)
	}
	rec := s.listen(t, b2, b2)
	next := publish(t, b2, msg("next", "ro"))
	if next.Pos.Epoch != e || next.Pos.Offset <= h.Offset {
		t.Errorf("first publish after reopening at %v, want after %v", next.Pos, h)
	}
	if !rec.waitFor(t, next.Pos, s.o.Wait) {
		t.Fatalf("Listen after reopening: message not received within %v", s.o.Wait)
	}
}
