package ws_test

import (
	"net/url"
	"testing"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
)

// TestRetainedAfterReset: over WebSocket too, a client resuming with a
// reset gets the topic's retained event first (it had left history), then
// what history kept, then live events.
func TestRetainedAfterReset(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) { c.History.MaxEvents = 2 })
	first := publish(t, srv, `{"topic":"bar","data":"10%","retain":true}`)
	publish(t, srv, `{"topic":"bar","data":"40%","retain":true}`)
	publish(t, srv, `{"topic":"bar","data":"log a"}`)
	publish(t, srv, `{"topic":"bar","data":"log b"}`) // 40% left history

	c := dial(t, srv, "topic=bar&lastEventID="+url.QueryEscape(first))
	if f := read(t, c); f.Type != "reset" || f.Reason != "history-truncated" {
		t.Fatalf("first frame %+v, want a history-truncated reset", f)
	}
	for _, want := range []string{"40%", "log a", "log b"} {
		if f := read(t, c); f.Type != "event" || f.Data != want {
			t.Fatalf("frame %+v, want event %q", f, want)
		}
	}
	live := publish(t, srv, `{"topic":"bar","data":"live"}`)
	for {
		f := read(t, c)
		if f.Type == "position" {
			continue
		}
		if f.Type != "event" || f.ID != live {
			t.Fatalf("frame %+v, want the live event %s", f, live)
		}
		break
	}
}
