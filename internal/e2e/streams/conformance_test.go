package streams_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// longPoll is the long-poll timeout of the herald the suite runs against:
// short, since several of the suite's tests wait for it in full.
const longPoll = time.Second

// TestConformance runs the official Durable Streams conformance suite
// (@durable-streams/server-conformance-tests 0.3.6, unmodified, pinned in
// testdata/node/package-lock.json) against a `herald serve` on each broker.
// Every test of the suite must pass.
func TestConformance(t *testing.T) {
	dir := npmDir(t)
	for _, bc := range brokers() {
		t.Run(bc.name, func(t *testing.T) {
			// Much of the suite waits (long-polls run out, streams
			// expire): the brokers' runs overlap.
			t.Parallel()
			flags := append(bc.flags(t), "--cors-origins", "*", "--ds-long-poll-timeout", longPoll.String(),
				// The suite's webhook receiver listens on loopback.
				"--ds-webhook-allow", "127.0.0.0/8,::1")
			n := startHerald(t, flags...)
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", filepath.Join("node_modules", "vitest", "vitest.mjs"), "run", "--reporter=dot", "--no-color")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "HERALD_URL="+n.URL, "HERALD_LONG_POLL_MS="+itoa(longPoll.Milliseconds()), "NO_COLOR=1", "CI=1")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			summary := regexp.MustCompile(`(?m)^\s*Tests\s+.*$`).FindString(out.String())
			t.Logf("conformance on %s: %s", bc.name, summary)
			if err != nil {
				t.Fatalf("the conformance suite failed on %s: %v\n%s\nherald's log:\n%s", bc.name, err, tail(out.String(), 20000), tail(n.out.String(), 4000))
			}
			// Every test runs, the "Reserved subscription APIs" included
			// (options.subscriptions): none may be skipped.
			if regexp.MustCompile(`skipped`).MatchString(summary) {
				t.Fatalf("the suite skipped tests: %q", summary)
			}
			if !regexp.MustCompile(`Tests\s+\d+ passed`).MatchString(summary) || regexp.MustCompile(`failed`).MatchString(summary) {
				t.Fatalf("the suite did not pass in full: %q", summary)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
