package progress_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/config"
)

// TestRetainedAfterReset: a progress bar that resumes after a herald.reset
// gets the topic's current value at once, as a new subscriber does, even
// when the retained event left history; then the rest and live events. An
// exact resume gets history only.
func TestRetainedAfterReset(t *testing.T) {
	srv := start(t, func(c *config.Server) { c.History.MaxEvents = 2 })
	for _, tc := range []struct {
		name, reset string
		lastID      func(first, second string) string
		want        []string
	}{
		{"history truncated", "history-truncated", func(first, _ string) string { return first }, []string{"40%", "log a", "log b"}},
		{"epoch changed", "epoch-changed", func(string, string) string { return "zzzzzzzzzz-2" }, []string{"40%", "log a", "log b"}},
		{"invalid id", "invalid-id", func(string, string) string { return "nonsense" }, []string{"40%", "log a", "log b"}},
		{"exact resume", "", func(_, second string) string { return second }, []string{"log a", "log b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "bar-" + strings.ReplaceAll(tc.name, " ", "-")
			first := mustPublish(t, srv.URL, url.Values{"topic": {topic}, "data": {"10%"}, "retain": {"true"}})
			second := mustPublish(t, srv.URL, url.Values{"topic": {topic}, "data": {"40%"}, "retain": {"true"}})
			mustPublish(t, srv.URL, url.Values{"topic": {topic}, "data": {"log a"}})
			mustPublish(t, srv.URL, url.Values{"topic": {topic}, "data": {"log b"}}) // 40% left history

			lastID := tc.lastID(first, second)
			s := subscribe(t, srv.URL, lastID, topic)
			if tc.reset != "" {
				b := s.nextEvent(t)
				if b.Type != "herald.reset" || !strings.Contains(b.Data, tc.reset) {
					t.Fatalf("first event %v, want a herald.reset for %s", b, tc.reset)
				}
			}
			var got []string
			for range tc.want {
				got = append(got, s.nextEvent(t).Data)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("after Last-Event-ID %q: %q, want %q", lastID, got, tc.want)
			}
			live := mustPublish(t, srv.URL, url.Values{"topic": {topic}, "data": {"live"}})
			if b := s.nextEvent(t); b.ID != live {
				t.Fatalf("live event %v, want id %s", b, live)
			}
		})
	}
}
