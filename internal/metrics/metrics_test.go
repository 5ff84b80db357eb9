package metrics_test

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

func newMetrics(t *testing.T) (*metrics.Metrics, *hub.Hub) {
	t.Helper()
	b := memory.New(nil)
	t.Cleanup(func() { b.Close() })
	h := hub.New(b, nil)
	m := metrics.New(h)
	// Touch every vector so that each family is exposed.
	m.Connections.WithLabelValues("sse").Set(0)
	m.Rejected.WithLabelValues("bad_request").Add(0)
	m.Delivered.WithLabelValues("sse").Add(0)
	m.PublishDuration.Observe(0.001)
	return m, h
}

// TestNamingConventions lints every metric Herald exposes with promlint,
// client_golang's checker of the Prometheus naming conventions.
func TestNamingConventions(t *testing.T) {
	m, _ := newMetrics(t)
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "herald_") && !strings.HasSuffix(mf.GetHelp(), ".") {
			t.Errorf("%s: help text should be a sentence ending with a period: %q", mf.GetName(), mf.GetHelp())
		}
	}
}

func TestHubCountersAreExposed(t *testing.T) {
	m, h := newMetrics(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	sub, err := h.Subscribe(ctx, hub.Request{Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := h.Publish(ctx, &pubsub.Message{Topics: []string{"t"}, Data: "x"}); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		"herald_subscriptions 1",
		"herald_events_published_total 1",
		"herald_connections{transport=\"sse\"} 0",
		"herald_publish_duration_seconds_bucket",
		"herald_slow_consumer_disconnects_total 0",
		"herald_resets_total{reason=\"history-truncated\"} 0",
		"herald_events_replayed_total",
		"herald_events_dropped_total",
		"herald_requests_rejected_total",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	cancel()
	<-done
}
