// Package metrics defines Herald's Prometheus metrics. A Metrics value owns
// its registry; nothing is registered globally.
package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/outage"
)

// Metrics holds the collectors that handlers update directly. Counters that
// the hub keeps are read from it at scrape time.
type Metrics struct {
	Registry *prometheus.Registry

	// Connections open now, by transport (sse, ws).
	Connections *prometheus.GaugeVec
	// PublishDuration of accepted publishes, from request to stored.
	PublishDuration prometheus.Histogram
	// Rejected requests, by reason (e.g. "bad_request", "limit").
	Rejected *prometheus.CounterVec
	// Delivered events written to clients, by transport.
	Delivered *prometheus.CounterVec
	// Failures, if set, reports per-request failures (see Failed); the
	// server sets it and registers it in Registry.
	Failures *outage.Reporter
}

// Failed reports a failure of op through m.Failures: counted, and logged
// once per kind and interval instead of once per request. With no reporter
// (m or m.Failures nil) the failure is logged to slog.Default.
func (m *Metrics) Failed(op outage.Op, err error) {
	var r *outage.Reporter
	if m != nil {
		r = m.Failures
	}
	r.Fail(op, err)
}

// New returns Metrics registered in a new registry, with the hub's counters
// and the Go and process collectors.
func New(h *hub.Hub) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_connections",
			Help: "Client connections open now, by transport.",
		}, []string{"transport"}),
		PublishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_publish_duration_seconds",
			Help:    "Time from receiving a publish request to the event being stored in history.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_requests_rejected_total",
			Help: "Requests rejected, by reason.",
		}, []string{"reason"}),
		Delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_events_written_total",
			Help: "Events written to client connections, by transport.",
		}, []string{"transport"}),
	}
	reg.MustRegister(m.Connections, m.PublishDuration, m.Rejected, m.Delivered,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if h != nil {
		reg.MustRegister(hubCollector{h})
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

var (
	descSubscriptions = prometheus.NewDesc("herald_subscriptions", "Subscriptions open now on this node.", nil, nil)
	descPublished     = prometheus.NewDesc("herald_events_published_total", "Events published through this node.", nil, nil)
	descDelivered     = prometheus.NewDesc("herald_events_delivered_total", "Events handed to subscribers' transports on this node.", nil, nil)
	descReplayed      = prometheus.NewDesc("herald_events_replayed_total", "Events replayed from history to resuming subscribers.", nil, nil)
	descDropped       = prometheus.NewDesc("herald_events_dropped_total", "Events dropped from the queues of subscribers cut off as slow consumers (they resume from history).", nil, nil)
	descSlow          = prometheus.NewDesc("herald_slow_consumer_disconnects_total", "Subscribers disconnected because their queue overflowed.", nil, nil)
	descResets        = prometheus.NewDesc("herald_resets_total", "herald.reset events sent, by reason.", []string{"reason"}, nil)
	descShardListen   = prometheus.NewDesc("herald_shard_listening", "1 while this node reads the shard (a local subscriber needs it), else 0.", []string{"shard"}, nil)
	descShardReceived = prometheus.NewDesc("herald_shard_messages_received_total", "Messages this node read from the shard.", []string{"shard"}, nil)
)

type hubCollector struct{ h *hub.Hub }

func (c hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSubscriptions, descPublished, descDelivered, descReplayed, descDropped, descSlow, descResets, descShardListen, descShardReceived} {
		ch <- d
	}
}

func (c hubCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.h.Stats()
	ch <- prometheus.MustNewConstMetric(descSubscriptions, prometheus.GaugeValue, float64(s.Subscriptions))
	ch <- prometheus.MustNewConstMetric(descPublished, prometheus.CounterValue, float64(s.Published))
	ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(s.Delivered))
	ch <- prometheus.MustNewConstMetric(descReplayed, prometheus.CounterValue, float64(s.Replayed))
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(descSlow, prometheus.CounterValue, float64(s.SlowDisconnects))
	for reason, n := range s.Resets {
		ch <- prometheus.MustNewConstMetric(descResets, prometheus.CounterValue, float64(n), reason)
	}
	for _, st := range c.h.ShardStats() {
		k := strconv.Itoa(st.Shard)
		listening := 0.0
		if st.Listening {
			listening = 1
		}
		ch <- prometheus.MustNewConstMetric(descShardListen, prometheus.GaugeValue, listening, k)
		ch <- prometheus.MustNewConstMetric(descShardReceived, prometheus.CounterValue, float64(st.Received), k)
	}
}
