package aisdk

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/chat"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
)

func msgEvent(typ, data string) *hub.Event {
	return hub.NewMessageEvent(&pubsub.Message{Topics: []string{"chat/x"}, Type: typ, Data: data})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestEncoder(t *testing.T) {
	for _, tt := range []struct {
		name   string
		events []*hub.Event
		want   string
	}{
		{"token", []*hub.Event{msgEvent(chat.EventToken, "a\n\"b\"")},
			"data: {\"type\":\"text-delta\",\"id\":\"text\",\"delta\":\"a\\n\\\"b\\\"\"}\n\n"},
		{"done", []*hub.Event{msgEvent(chat.EventDone, mustJSON(chat.Done{Text: "t", FinishReason: "content_filter"}))},
			"data: {\"type\":\"text-end\",\"id\":\"text\"}\n\ndata: {\"type\":\"finish\",\"finishReason\":\"content-filter\"}\n\ndata: [DONE]\n\n"},
		{"stopped", []*hub.Event{msgEvent(chat.EventDone, mustJSON(chat.Done{FinishReason: "stopped", Stopped: true}))},
			"data: {\"type\":\"text-end\",\"id\":\"text\"}\n\ndata: {\"type\":\"abort\",\"reason\":\"stopped\"}\n\ndata: [DONE]\n\n"},
		{"error", []*hub.Event{msgEvent(chat.EventError, mustJSON(chat.Error{Message: "upstream <down>"}))},
			"data: {\"type\":\"text-end\",\"id\":\"text\"}\n\ndata: {\"type\":\"error\",\"errorText\":\"upstream \\u003cdown\\u003e\"}\n\ndata: [DONE]\n\n"},
		{"unreadable error", []*hub.Event{msgEvent(chat.EventError, "{")},
			"data: {\"type\":\"text-end\",\"id\":\"text\"}\n\ndata: {\"type\":\"error\",\"errorText\":\"the generation failed\"}\n\ndata: [DONE]\n\n"},
		{"unreadable done", []*hub.Event{msgEvent(chat.EventDone, "nope")},
			"data: {\"type\":\"text-end\",\"id\":\"text\"}\n\ndata: {\"type\":\"error\",\"errorText\":\"the answer's final event is unreadable: invalid character 'o' in literal null (expecting 'u')\"}\n\ndata: [DONE]\n\n"},
		{"nothing after the end", []*hub.Event{msgEvent(chat.EventError, "{}"), msgEvent(chat.EventToken, "late")},
			"data: {\"type\":\"text-end\",\"id\":\"text\"}\n\ndata: {\"type\":\"error\",\"errorText\":\"the generation failed\"}\n\ndata: [DONE]\n\n"},
		{"positions and other types skipped", []*hub.Event{{Kind: hub.KindPosition}, msgEvent("other", "x")}, ""},
		{"reset ends the stream", []*hub.Event{{Kind: hub.KindReset, Reset: hub.Reset{Reason: hub.ReasonTruncated}}, msgEvent(chat.EventToken, "x")},
			"data: {\"type\":\"error\",\"errorText\":\"the answer can no longer be replayed exactly (history-truncated): ask again\"}\n\ndata: [DONE]\n\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			enc := &encoder{}
			var b strings.Builder
			for _, ev := range tt.events {
				b.Write(enc.encode(ev))
			}
			if b.String() != tt.want {
				t.Fatalf("got  %q\nwant %q", b.String(), tt.want)
			}
		})
	}
}

func TestFinishReason(t *testing.T) {
	for in, want := range map[string]string{"stop": "stop", "length": "length", "content_filter": "content-filter",
		"tool_calls": "tool-calls", "function_call": "tool-calls", "": "other", "weird": "other"} {
		if got := finishReason(in); got != want {
			t.Errorf("finishReason(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestActiveIndex(t *testing.T) {
	open, closed := make(chan struct{}), make(chan struct{})
	close(closed)
	x := newActiveIndex()
	x.set("a", answer{id: "1", done: open})
	x.set("b", answer{id: "2", done: closed})
	if a, ok := x.get("a"); !ok || a.id != "1" {
		t.Fatalf("get(a) = %+v, %v", a, ok)
	}
	if _, ok := x.get("b"); ok {
		t.Fatal("a finished answer is active")
	}
	x.set("c", answer{id: "3", done: closed})
	x.set("d", answer{id: "4", done: open}) // drops c, finished
	if n := x.len(); n != 2 {
		t.Fatalf("%d entries, want 2 (finished answers dropped)", n)
	}
	x.clear("a", "other")
	if _, ok := x.get("a"); !ok {
		t.Fatal("clear of another answer dropped the chat's")
	}
	x.clear("a", "1")
	if _, ok := x.get("a"); ok {
		t.Fatal("cleared answer still active")
	}
}
