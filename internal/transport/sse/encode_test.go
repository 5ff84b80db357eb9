package sse_test

import (
	"context"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/internal/transport/sse"
	"github.com/heraldpush/herald/pubsub"
)

// Each kind of event has its text/event-stream form, computed once and
// shared by every subscriber.
func TestEncode(t *testing.T) {
	m := &pubsub.Message{Topics: []string{"a", "b"}, Type: "update", Data: "line1\nline2\r\nevent: evil", Final: true, Pos: pubsub.Position{Epoch: "e", Offset: 3}}
	ev := hub.NewMessageEvent(m)
	if got, want := string(sse.Encode(ev)), "id: e-3\nevent: update\ndata: line1\ndata: line2\ndata: event: evil\n\n"; got != want {
		t.Errorf("message: %q, want %q", got, want)
	}
	if a, b := sse.Encode(ev), sse.Encode(ev); &a[0] != &b[0] {
		t.Error("the SSE form was computed twice")
	}
	pos := &hub.Event{Kind: hub.KindPosition, Pos: pubsub.Position{Epoch: "e", Offset: 9}}
	if got := string(sse.Encode(pos)); got != "id: e-9\n\n" {
		t.Errorf("position: %q", got)
	}
	reset := &hub.Event{Kind: hub.KindReset, Reset: hub.Reset{Reason: hub.ReasonTruncated, LastEventID: "e-1"}}
	if got, want := string(sse.Encode(reset)), "event: herald.reset\ndata: {\"reason\":\"history-truncated\",\"lastEventId\":\"e-1\"}\n\n"; got != want {
		t.Errorf("reset: %q, want %q", got, want)
	}
}

// A subscriber of topics on several shards gets each event with an id of
// its own (a vector): its SSE form is that id ahead of the shared event's
// other fields, as the hub wrote it before transports encoded events.
func TestEncodeVectorID(t *testing.T) {
	h := testkit.ShardedHub(t, 2, nil)
	a, b := testkit.ShardTopic("a", 0, 2), testkit.ShardTopic("b", 1, 2)
	subs := make([]*hub.Subscription, 2)
	for i := range subs {
		s, err := h.Subscribe(context.Background(), hub.Request{Topics: []string{a, b}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		subs[i] = s
	}
	if _, err := h.Publish(context.Background(), &pubsub.Message{Topics: []string{b}, Type: "update", Data: "x\ny"}); err != nil {
		t.Fatal(err)
	}
	for i, s := range subs {
		var got []*hub.Event
		testkit.WaitFor(t, "the event", func() bool {
			evs, _ := s.Pop(nil)
			got = append(got, evs...)
			return len(got) > 0 && got[len(got)-1].Kind == hub.KindMessage
		})
		pos, ev := got[0], got[len(got)-1]
		if pos.Kind != hub.KindPosition || string(sse.Encode(pos)) != "id: "+pos.ID()+"\n\n" || !strings.Contains(pos.ID(), "~") {
			t.Errorf("subscriber %d: marker %q, want an id-only event with a vector id", i, sse.Encode(pos))
		}
		if ev.Shared() == nil || !strings.Contains(ev.ID(), "~") {
			t.Fatalf("subscriber %d: event id %q is not a vector on a copy of the shared event", i, ev.ID())
		}
		if got, want := string(sse.Encode(ev)), "id: "+ev.ID()+"\nevent: update\ndata: x\ndata: y\n\n"; got != want {
			t.Errorf("subscriber %d: %q, want %q", i, got, want)
		}
	}
}
