// Package testkit holds the helpers Herald's tests share: waiting for a
// condition, reading a text/event-stream (on the public sse decoder),
// publishing, and building the herald binary. One copy of each, so that
// every test package waits, reads and publishes the same way.
//
// It is imported by _test.go files only.
package testkit

import (
	"testing"
	"time"
)

// Timeout is how long WaitFor and the readers wait by default: long enough
// for a busy machine, short enough to fail a stuck test.
const Timeout = 10 * time.Second

// WaitFor polls cond until it holds, and fails t, naming what it waited
// for, if it does not within Timeout. It is the one way tests wait for a
// state they cannot be told about (never a fixed sleep).
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitWithin(t, Timeout, what, cond)
}

// WaitWithin is WaitFor with a timeout of d.
func WaitWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Within(d, cond) {
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
}

// Within polls cond until it holds or d passes, and reports whether it
// held: for a test that says itself what went wrong, or goes on either way.
func Within(d time.Duration, cond func() bool) bool {
	if cond() {
		return true
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
			if cond() {
				return true
			}
		}
	}
}
