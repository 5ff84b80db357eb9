package outage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/heraldpush/herald/internal/logtest"
	"github.com/heraldpush/herald/pubsub"
)

var errDown = fmt.Errorf("%w: redis: read: connection refused", pubsub.ErrUnavailable)

// wait lets fake time pass in the bubble and the summaries run.
func wait(d time.Duration) {
	<-time.After(d)
	synctest.Wait()
}

// TestOutageInAFewLines: a hundred refused subscriptions make one line when
// they start, one summary per interval with the count while they go on,
// one line when they stop, and nothing after.
func TestOutageInAFewLines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := logtest.New()
		r := New(&Options{Logger: rec.Logger(), Interval: 10 * time.Second})
		defer r.Close()
		for range 100 {
			r.Fail(Subscribe, errDown)
		}
		check := func(what string, want ...string) {
			t.Helper()
			got := rec.Take()
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("%s: logged\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
		check("at the first failure", "WARN subscriptions refused: broker unavailable")
		wait(10 * time.Second)
		check("after the first interval", "WARN refused 100 subscriptions in the last 10s: broker unavailable")
		for range 50 {
			r.Fail(Subscribe, errDown)
		}
		wait(10 * time.Second)
		check("after the second interval", "WARN refused 50 subscriptions in the last 10s: broker unavailable")
		wait(10 * time.Second)
		check("after a quiet interval", "INFO subscriptions no longer refused (broker unavailable): 150 in all over 30s")
		wait(time.Minute)
		check("once it stopped")
		if got := count(t, r, "subscribe", CauseUnavailable); got != 150 {
			t.Errorf("herald_failures_total{op=subscribe,cause=broker_unavailable} = %v, want 150", got)
		}
	})
}

// TestKindsAreSeparate: operations and causes are counted and summarised
// apart.
func TestKindsAreSeparate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := logtest.New()
		r := New(&Options{Logger: rec.Logger(), Interval: 10 * time.Second})
		defer r.Close()
		r.Fail(Publish, errDown)
		r.Fail(Publish, errDown)
		r.Fail(Publish, fmt.Errorf("nats: publish: %w", context.DeadlineExceeded))
		r.Fail(Webhook, errors.New("connection reset"))
		got := rec.Take()
		want := []string{"WARN publishes refused: broker unavailable", "WARN publishes refused: timed out", "WARN client messages not delivered to the webhook: error"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("logged %q, want %q", got, want)
		}
		for _, tc := range []struct {
			op, cause string
			want      float64
		}{{"publish", CauseUnavailable, 2}, {"publish", CauseTimeout, 1}, {"webhook", CauseError, 1}} {
			if got := count(t, r, tc.op, tc.cause); got != tc.want {
				t.Errorf("%s/%s: %v, want %v", tc.op, tc.cause, got, tc.want)
			}
		}
	})
}

// TestCloseFlushes: Close logs the pending summary and the ends, and no
// summary runs after it.
func TestCloseFlushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := logtest.New()
		r := New(&Options{Logger: rec.Logger(), Interval: 10 * time.Second})
		r.Fail(Subscribe, errDown)
		r.Fail(Subscribe, errDown)
		rec.Take()
		r.Close()
		got := rec.Take()
		if len(got) != 2 || !strings.Contains(got[0], "refused 2 subscriptions") || !strings.Contains(got[1], "no longer refused") {
			t.Fatalf("Close logged %q", got)
		}
		wait(time.Minute)
		if got := rec.Take(); len(got) != 0 {
			t.Fatalf("after Close: %q", got)
		}
	})
}

// TestNilReporter: a nil *Reporter still reports (every failure, to
// slog.Default), without panicking.
func TestNilReporter(t *testing.T) {
	var r *Reporter
	r.Fail(Publish, errDown)
}

func TestCause(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errDown, CauseUnavailable},
		{fmt.Errorf("hub: read snapshot: %w", errDown), CauseUnavailable},
		{context.DeadlineExceeded, CauseTimeout},
		{errors.New("boom"), CauseError},
	} {
		if got := Cause(tc.err); got != tc.want {
			t.Errorf("Cause(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// count returns herald_failures_total{op, cause}.
func count(t *testing.T, r *Reporter, op, cause string) float64 {
	t.Helper()
	var m dto.Metric
	if err := r.counter.WithLabelValues(op, cause).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
