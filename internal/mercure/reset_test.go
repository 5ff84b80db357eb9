package mercure_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/config"
)

// TestRetainedAfterReset: a Mercure subscriber whose Last-Event-ID is
// beyond history gets the herald.reset, then the topic's retained event
// (published through Herald's API; it had left history), then the rest.
func TestRetainedAfterReset(t *testing.T) {
	srv := startHub(t, func(c *config.Server) { c.History.MaxEvents = 2 })
	pub := func(body string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/publish", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+publisher(t))
		resp, b := do(t, req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/publish %s: %d %s", body, resp.StatusCode, b)
		}
		return b
	}
	pub(`{"topic":"bar","data":"10%","retain":true}`)
	pub(`{"topic":"bar","data":"40%","retain":true}`)
	pub(`{"topic":"bar","data":"log a"}`)
	pub(`{"topic":"bar","data":"log b"}`) // 40% left history

	s := subscribe(t, srv.URL, sub{topics: []string{"bar"}, lastID: "zzzzzzzzzz-1"})
	if ev := s.Next(t); ev.Type != "herald.reset" || !strings.Contains(ev.Data, "epoch-changed") {
		t.Fatalf("first event %+v, want a herald.reset for epoch-changed", ev)
	}
	var got []string
	for range 3 {
		got = append(got, s.Next(t).Data)
	}
	if strings.Join(got, " ") != "40% log a log b" {
		t.Fatalf("after the reset: %q, want 40%% log a log b", got)
	}
}
