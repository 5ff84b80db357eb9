package sse_test

import (
	"testing"

	"github.com/heraldpush/herald/internal/hub"
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
