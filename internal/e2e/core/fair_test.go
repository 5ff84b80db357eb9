package core_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/config"
)

// TestFairHistory: one noisy topic publishing 40 events of 1 MiB under an
// 8 MiB --history-max-bytes keeps its newest few; a quiet topic's only
// event stays, and a client resuming the quiet topic from before it gets
// it without a herald.reset. In memory and with --data-dir.
func TestFairHistory(t *testing.T) {
	for _, tc := range []struct {
		name string
		dir  bool
	}{{"memory", false}, {"data-dir", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := ""
			if tc.dir {
				dir = t.TempDir()
			}
			srv := start(t, func(c *config.Server) {
				c.History.MaxBytes = 8 << 20
				c.Broker.DataDir = dir
			})
			c := newClient(t)
			quiet := publish(t, c, srv.URL, "the only event", "quiet")
			epoch, _, _ := strings.Cut(quiet, "-")
			chunk := strings.Repeat("n", 1<<20-8)
			var noisy []string
			for i := range 40 {
				noisy = append(noisy, publish(t, c, srv.URL, fmt.Sprintf("%02d:%s", i, chunk), "noisy"))
			}

			s := subscribe(t, c, eventsURL(srv.URL, "quiet"), epoch+"-0")
			if b := s.Next(t); b.Type == "herald.reset" || b.ID != quiet {
				t.Fatalf("quiet topic resumed from the start: first event %v, want its only event %s", b, quiet)
			}
			s.Close()

			s = subscribe(t, c, eventsURL(srv.URL, "noisy"), epoch+"-0")
			if b := s.Next(t); b.Type != "herald.reset" || !strings.Contains(b.Data, "history-truncated") {
				t.Fatalf("noisy topic resumed from the start: first event %v, want a history-truncated reset", b)
			}
			var kept []string
			for len(kept) == 0 || kept[len(kept)-1] != noisy[len(noisy)-1] {
				kept = append(kept, s.Next(t).ID)
			}
			s.Close()
			if len(kept) > 8 {
				t.Fatalf("noisy topic kept %d events of 1 MiB under an 8 MiB bound", len(kept))
			}
			t.Logf("noisy topic kept its newest %d events", len(kept))
		})
	}
}
