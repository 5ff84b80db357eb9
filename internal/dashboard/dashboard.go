// Package dashboard serves Herald's live dashboard: a page at /dashboard fed
// by Herald's own Server-Sent Events (/dashboard/stream), with a sample of the
// server's state every second and the last five minutes of history.
package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/transport"
	ssehttp "github.com/heraldpush/herald/internal/transport/sse"
	"github.com/heraldpush/herald/internal/webui"
	"github.com/heraldpush/herald/sse"
	webdashboard "github.com/heraldpush/herald/web/dashboard"
)

// Source is what the sampler reads.
type Source struct {
	Hub *hub.Hub
	// Registry, if set, is read for connections by transport
	// (herald_connections).
	Registry prometheus.Gatherer
	// Broker names the broker for display.
	Broker string
	// Gauges are extra values shown by name, e.g. chat generations in
	// flight.
	Gauges map[string]func() float64
}

// TopicRate is a topic's activity in one sample.
type TopicRate struct {
	Topic       string  `json:"topic"`
	Subscribers int     `json:"subscribers"`
	Rate        float64 `json:"rate"` // messages per second
}

// Sample is the server's state at one moment.
type Sample struct {
	Time            int64              `json:"t"` // Unix milliseconds
	Connections     map[string]float64 `json:"connections"`
	Subscriptions   int64              `json:"subscriptions"`
	Topics          int                `json:"topics"`
	PublishRate     float64            `json:"publishRate"`
	DeliveryRate    float64            `json:"deliveryRate"`
	Published       uint64             `json:"published"`
	Delivered       uint64             `json:"delivered"`
	SlowDisconnects uint64             `json:"slowDisconnects"`
	Resets          map[string]int64   `json:"resets"`
	TopTopics       []TopicRate        `json:"topTopics"`
	Broker          string             `json:"broker"`
	Epoch           string             `json:"epoch"`
	Gauges          map[string]float64 `json:"gauges"`
	Goroutines      int                `json:"goroutines"`
	HeapBytes       uint64             `json:"heapBytes"`
	// Dashboards counts the open dashboard streams (/dashboard/stream).
	// They are not hub subscriptions, so Connections leaves them out.
	Dashboards int64 `json:"dashboards"`
}

// HistoryLen is how many samples the dashboard keeps: five minutes.
const HistoryLen = 300

// Sampler takes a Sample every interval and serves the dashboard.
type Sampler struct {
	src      Source
	interval time.Duration

	stop     chan struct{}
	stopOnce sync.Once
	streams  atomic.Int64 // open dashboard streams

	mu       sync.Mutex
	ring     []Sample
	changed  chan struct{} // closed and replaced on each new sample
	prev     hub.Stats
	prevTime time.Time
	prevTop  map[string]uint64
}

// NewSampler returns a Sampler; start it with Run.
func NewSampler(src Source, interval time.Duration) *Sampler {
	if interval <= 0 {
		interval = time.Second
	}
	return &Sampler{src: src, interval: interval, changed: make(chan struct{}), stop: make(chan struct{})}
}

// Stop ends every open dashboard stream; call it when the server shuts down.
func (s *Sampler) Stop() { s.stopOnce.Do(func() { close(s.stop) }) }

// Run samples until ctx ends.
func (s *Sampler) Run(ctx context.Context) {
	s.sample()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sample()
		}
	}
}

func (s *Sampler) sample() {
	now := time.Now()
	st := s.src.Hub.Stats()
	smp := Sample{
		Time:            now.UnixMilli(),
		Connections:     map[string]float64{},
		Subscriptions:   st.Subscriptions,
		Published:       st.Published,
		Delivered:       st.Delivered,
		SlowDisconnects: st.SlowDisconnects,
		Resets:          st.Resets,
		Broker:          s.src.Broker,
		Epoch:           s.src.Hub.Broker().Epoch(),
		Gauges:          map[string]float64{},
		Goroutines:      runtime.NumGoroutine(),
		Dashboards:      s.streams.Load(),
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	smp.HeapBytes = ms.HeapAlloc
	if s.src.Registry != nil {
		if mfs, err := s.src.Registry.Gather(); err == nil {
			for _, mf := range mfs {
				if mf.GetName() != "herald_connections" {
					continue
				}
				for _, m := range mf.GetMetric() {
					for _, lp := range m.GetLabel() {
						if lp.GetName() == "transport" {
							smp.Connections[lp.GetValue()] = m.GetGauge().GetValue()
						}
					}
				}
			}
		}
	}
	for name, f := range s.src.Gauges {
		smp.Gauges[name] = f()
	}
	topics := s.src.Hub.TopicStats()
	smp.Topics = len(topics)

	s.mu.Lock()
	defer s.mu.Unlock()
	secs := now.Sub(s.prevTime).Seconds()
	top := make(map[string]uint64, len(topics))
	rates := make([]TopicRate, 0, len(topics))
	for _, t := range topics {
		top[t.Topic] = t.Messages
		r := TopicRate{Topic: t.Topic, Subscribers: t.Subscribers}
		if prev, ok := s.prevTop[t.Topic]; ok && secs > 0 && t.Messages >= prev {
			r.Rate = float64(t.Messages-prev) / secs
		}
		rates = append(rates, r)
	}
	sort.Slice(rates, func(i, j int) bool {
		if rates[i].Rate != rates[j].Rate {
			return rates[i].Rate > rates[j].Rate
		}
		if rates[i].Subscribers != rates[j].Subscribers {
			return rates[i].Subscribers > rates[j].Subscribers
		}
		return rates[i].Topic < rates[j].Topic
	})
	if len(rates) > 10 {
		rates = rates[:10]
	}
	smp.TopTopics = rates
	if !s.prevTime.IsZero() && secs > 0 {
		smp.PublishRate = float64(st.Published-s.prev.Published) / secs
		smp.DeliveryRate = float64(st.Delivered-s.prev.Delivered) / secs
	}
	s.prev, s.prevTime, s.prevTop = st, now, top
	s.ring = append(s.ring, smp)
	if len(s.ring) > HistoryLen {
		s.ring = append(s.ring[:0], s.ring[len(s.ring)-HistoryLen:]...)
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// History returns the samples kept, oldest first, and a channel closed when
// the next sample is taken.
func (s *Sampler) History() ([]Sample, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.ring...), s.changed
}

func (s *Sampler) latest() (Sample, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ring) == 0 {
		return Sample{}, s.changed
	}
	return s.ring[len(s.ring)-1], s.changed
}

// Page returns the handlers of the dashboard page: page serves GET
// /dashboard (with site's header), assets GET /dashboard/{file} (its script
// and style sheet, which hold no data).
func Page(site webui.Site) (page, assets http.Handler, err error) {
	p, files, err := webui.PageFiles(webdashboard.Files(), "index.html", site, webui.Dashboard)
	if err != nil {
		return nil, nil, err
	}
	return p, webui.Dir(files), nil
}

// StreamHandler serves the samples as Server-Sent Events: first an event
// "history" with every sample kept (a JSON array), then an event "sample"
// for each new one. Open streams are counted in Sample.Dashboards.
//
// It is the one stream not written by the shared pump of
// internal/transport: its events are samples, not a hub subscription, and
// a dashboard is an operator's page, open a few at a time; it uses the
// transport's headers and write timeout.
func (s *Sampler) StreamHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.streams.Add(1)
		defer s.streams.Add(-1)
		ssehttp.SetHeaders(w.Header())
		rc := http.NewResponseController(w)
		send := func(typ string, v any) bool {
			data, _ := json.Marshal(v)
			ev := sse.Event{Type: typ, Data: string(data)}
			b, _ := ev.AppendTo(nil)
			_ = rc.SetWriteDeadline(time.Now().Add(transport.DefaultWriteTimeout))
			if _, err := w.Write(b); err != nil {
				return false
			}
			return rc.Flush() == nil
		}
		hist, changed := s.History()
		if !send("history", hist) {
			return
		}
		for {
			select {
			case <-r.Context().Done():
				return
			case <-s.stop:
				return
			case <-changed:
			}
			var smp Sample
			smp, changed = s.latest()
			if !send("sample", smp) {
				return
			}
		}
	})
}
