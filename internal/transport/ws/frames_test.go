package ws_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/internal/transport/ws"
	"github.com/heraldpush/herald/pubsub"
)

// A subscriber of topics on several shards gets each event with an id of
// its own (a vector): its JSON frame is the bytes json.Marshal gives for
// the frame with that id (what the hub wrote before transports encoded
// events), built from the shared frame without an id.
func TestEncodeJSONVectorID(t *testing.T) {
	h := testkit.ShardedHub(t, 2, nil)
	a, b := testkit.ShardTopic("a", 0, 2), testkit.ShardTopic("b", 1, 2)
	s, err := h.Subscribe(context.Background(), hub.Request{Topics: []string{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	msgs := []*pubsub.Message{
		{Topics: []string{a}, Type: "update", Data: `<b>"quoted" & \ escaped</b>`},
		{Topics: []string{b}},                  // no type, no data: the shortest frame
		{Topics: []string{a, b}, Data: "both"}, // split over the two shards, taken once
		{Topics: []string{b}, Type: "end", Data: "last", Final: true},
	}
	for _, m := range msgs {
		if _, err := h.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	var got []*hub.Event
	testkit.WaitFor(t, "the events", func() bool {
		evs, _ := s.Pop(nil)
		got = append(got, evs...)
		return len(got) >= 1+len(msgs)
	})
	if pos := got[0]; pos.Kind != hub.KindPosition || string(ws.EncodeJSON(pos)) != `{"type":"position","id":"`+pos.ID()+`"}` {
		t.Errorf("marker %s", ws.EncodeJSON(pos))
	}
	for i, ev := range got[1:] {
		m := msgs[i]
		if ev.Shared() == nil || !strings.Contains(ev.ID(), "~") {
			t.Fatalf("event %d: id %q is not a vector on a copy of the shared event", i, ev.ID())
		}
		want, _ := json.Marshal(ws.Frame{Type: "event", ID: ev.ID(), Event: m.Type, Data: m.Data, Final: m.Final})
		if got := ws.EncodeJSON(ev); string(got) != string(want) {
			t.Errorf("event %d: %s, want %s", i, got, want)
		}
	}
}
