package hub_test

import (
	"context"
	"errors"
	"testing"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
)

// A transport that cannot write in time ends the subscription as a slow
// consumer: it is counted like a queue overflow, and what was queued is
// dropped (the client resumes from history).
func TestEndSlow(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	s := e.subscribe("", "t")
	other := e.subscribe("", "t")
	s.Pop(nil)
	e.pub("a", "t")
	e.pub("b", "t")
	before := e.hub.Stats()
	s.EndSlow()
	s.EndSlow() // idempotent
	evs, open := s.Pop(nil)
	if open || len(evs) != 0 {
		t.Fatalf("after EndSlow: Pop = %s, open=%v; want nothing, closed", descs(evs), open)
	}
	if !errors.Is(s.Err(), hub.ErrSlowConsumer) {
		t.Fatalf("Err = %v, want ErrSlowConsumer", s.Err())
	}
	after := e.hub.Stats()
	if after.SlowDisconnects != before.SlowDisconnects+1 || after.Dropped != before.Dropped+2 {
		t.Fatalf("stats: slow %d→%d, dropped %d→%d; want +1 and +2", before.SlowDisconnects, after.SlowDisconnects, before.Dropped, after.Dropped)
	}
	// Others are untouched.
	e.pub("c", "t")
	evs, open = other.Pop(nil)
	if !open || descs(evs) == "" {
		t.Fatalf("other subscriber: %s, open=%v", descs(evs), open)
	}
	// Ending an ended subscription changes nothing.
	f := e.subscribe("", "t")
	f.Close()
	f.EndSlow()
	if got := e.hub.Stats().SlowDisconnects; got != after.SlowDisconnects {
		t.Fatalf("EndSlow on a closed subscription counted: %d", got)
	}
}

// An internal subscription (one the server holds for itself) is left out
// of the counts and survives an administrator's Disconnect.
func TestInternalSubscription(t *testing.T) {
	e := newEnv(t, pubsub.Retention{}, nil)
	in, err := e.hub.Subscribe(context.Background(), hub.Request{Topics: []string{"t"}, Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if n := e.hub.Stats().Subscriptions; n != 0 {
		t.Fatalf("Subscriptions = %d with only an internal one", n)
	}
	if c := e.hub.TopicCounts(); len(c) != 0 {
		t.Fatalf("TopicCounts = %v with only an internal subscription", c)
	}
	client := e.subscribe("", "t")
	if n, c, st := e.hub.Stats().Subscriptions, e.hub.TopicCounts()["t"], e.hub.TopicStats(); n != 1 || c != 1 || len(st) != 1 || st[0].Subscribers != 1 {
		t.Fatalf("with one client: Subscriptions=%d TopicCounts[t]=%d TopicStats=%+v", n, c, st)
	}
	if n := e.hub.Disconnect(""); n != 1 {
		t.Fatalf("Disconnect ended %d subscriptions, want only the client's", n)
	}
	if _, open := client.Pop(nil); open {
		t.Fatal("the client's subscription is still open")
	}
	in.Pop(nil)
	e.pub("x", "t")
	evs, open := in.Pop(nil)
	if !open || descs(evs) != "x" {
		t.Fatalf("internal subscription after Disconnect: %s open=%v", descs(evs), open)
	}
	in.Close()
	client.Close()
	if n := e.hub.Stats().Subscriptions; n != 0 {
		t.Fatalf("Subscriptions = %d after closing", n)
	}
}
