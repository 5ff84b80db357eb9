// Package bench is Herald's load generator, behind `herald bench`: it opens
// subscribers over SSE or WebSocket, publishes over HTTP at a set rate,
// checks every subscriber's stream for loss, duplicates and order (each
// payload carries its publisher, a sequence number and a timestamp), and
// measures publish→receive latency with an HDR histogram, plus the server's
// CPU and memory when it can see them.
//
// Every run is bounded in connections and time and targets loopback unless
// told otherwise.
package bench

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Config describes a run.
type Config struct {
	// Server is the base URL of the server under test.
	Server string
	// Transport is "sse" (default) or "ws".
	Transport string
	// Face is the SSE endpoint subscribers use: "events" (default,
	// /events), "mercure" (/.well-known/mercure) or "demo" (/sse/subscribe,
	// whose topic is the demo's: for idle runs).
	Face string
	// Subscribers to open; subscriber i follows topic i % Topics.
	Subscribers int
	// Topics to spread subscribers and publishes over. Default 1.
	Topics int
	// Publishers publishing concurrently. Default 1.
	Publishers int
	// Rate is the total publish rate in events per second; 0 means as fast
	// as the publishers can go.
	Rate float64
	// Size of each payload in bytes (at least the header it carries).
	Size int
	// Duration of the publishing phase.
	Duration time.Duration
	// Batch events per publish request (a JSON array); 1 sends one form
	// request per event.
	Batch int
	// ConnRate limits new connections per second; 0 means no limit.
	ConnRate float64
	// Stalled subscribers connect but never read (slow-consumer scenario);
	// they are not counted in the results.
	Stalled int
	// Drain is how long to wait after publishing for the last events.
	// Default 2s.
	Drain time.Duration
	// PID of a local server process whose CPU and memory to read from /proc.
	// 0 reads them from the server's /metrics instead (when it has them).
	PID int
	// AllowRemote permits a server address outside the loopback range.
	AllowRemote bool
	// Progress, if set, receives a live status line every second.
	Progress io.Writer
}

// Result is what a run measured.
type Result struct {
	Scenario    string  `json:"scenario,omitempty"`
	Server      string  `json:"server"`
	Transport   string  `json:"transport"`
	Face        string  `json:"face,omitempty"`
	Subscribers int     `json:"subscribers"`
	Topics      int     `json:"topics"`
	Publishers  int     `json:"publishers"`
	Seconds     float64 `json:"seconds"`

	Published     int64   `json:"published"`
	PublishErrors int64   `json:"publishErrors"`
	PublishRate   float64 `json:"publishRate"`
	Expected      int64   `json:"expected"`
	Received      int64   `json:"received"`
	DeliveryRate  float64 `json:"deliveryRate"`
	Lost          int64   `json:"lost"`
	Duplicated    int64   `json:"duplicated"`
	OutOfOrder    int64   `json:"outOfOrder"`
	ConnectErrors int64   `json:"connectErrors"`
	Disconnects   int64   `json:"disconnects"`

	LatencyP50 float64 `json:"latencyP50Ms"`
	LatencyP90 float64 `json:"latencyP90Ms"`
	LatencyP99 float64 `json:"latencyP99Ms"`
	LatencyMax float64 `json:"latencyMaxMs"`

	ServerCPUSeconds     float64 `json:"serverCpuSeconds,omitempty"`
	CPUPerDeliveryMicros float64 `json:"cpuPerDeliveryUs,omitempty"`
	ServerRSSBytes       int64   `json:"serverRssBytes,omitempty"`
	RSSPerConnBytes      float64 `json:"rssPerConnBytes,omitempty"`

	// Extra holds scenario-specific figures.
	Extra map[string]float64 `json:"extra,omitempty"`
}

// OK reports whether the run saw no loss, duplicate or reordering.
func (r *Result) OK() bool { return r.Lost == 0 && r.Duplicated == 0 && r.OutOfOrder == 0 }

func (c *Config) defaults() error {
	if c.Server == "" {
		c.Server = "http://127.0.0.1:8080"
	}
	c.Server = strings.TrimRight(c.Server, "/")
	if c.Transport == "" {
		c.Transport = "sse"
	}
	if c.Transport != "sse" && c.Transport != "ws" {
		return fmt.Errorf("transport %q: use sse or ws", c.Transport)
	}
	if c.Face == "" {
		c.Face = "events"
	}
	if _, ok := faces[c.Face]; !ok || c.Transport == "ws" && c.Face != "events" {
		return fmt.Errorf("face %q: use events, mercure or demo (with the sse transport)", c.Face)
	}
	if c.Topics <= 0 {
		c.Topics = 1
	}
	if c.Publishers <= 0 {
		c.Publishers = 1
	}
	if c.Batch <= 0 {
		c.Batch = 1
	}
	if c.Size < minPayload {
		c.Size = minPayload
	}
	if c.Drain <= 0 {
		c.Drain = 2 * time.Second
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	const maxConns, maxDuration = 100_000, time.Hour
	if c.Subscribers < 0 || c.Subscribers+c.Stalled > maxConns {
		return fmt.Errorf("subscribers: at most %d connections", maxConns)
	}
	if c.Duration > maxDuration {
		return fmt.Errorf("duration: at most %s", maxDuration)
	}
	u, err := url.Parse(c.Server)
	if err != nil || u.Host == "" {
		return fmt.Errorf("server %q: not a URL", c.Server)
	}
	if !c.AllowRemote && !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("server %q is not on loopback: pass --allow-remote to load a remote server", c.Server)
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// faces maps a face to its subscribe URL (after the server's), given the
// topic, query-escaped.
var faces = map[string]func(topic string) string{
	"events":  func(t string) string { return "/events?topic=" + t },
	"mercure": func(t string) string { return "/.well-known/mercure?topic=" + t },
	"demo":    func(string) string { return "/sse/subscribe" },
}

// minPayload is the room the payload header needs: "p.seq.nanos.".
const minPayload = 48

// payload builds "<publisher>.<seq>.<unix nanos>." padded to size.
func payload(buf []byte, pub int, seq int64, size int) []byte {
	buf = buf[:0]
	buf = strconv.AppendInt(buf, int64(pub), 10)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, seq, 10)
	buf = append(buf, '.')
	buf = strconv.AppendInt(buf, time.Now().UnixNano(), 10)
	buf = append(buf, '.')
	for len(buf) < size {
		buf = append(buf, 'x')
	}
	return buf
}

func parsePayload(s string) (pub int, seq int64, sent int64, ok bool) {
	a, rest, ok1 := strings.Cut(s, ".")
	b, rest, ok2 := strings.Cut(rest, ".")
	c, _, ok3 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || !ok3 {
		return 0, 0, 0, false
	}
	p, err1 := strconv.Atoi(a)
	q, err2 := strconv.ParseInt(b, 10, 64)
	t, err3 := strconv.ParseInt(c, 10, 64)
	return p, q, t, err1 == nil && err2 == nil && err3 == nil
}

// histograms is a sharded set of latency histograms (microseconds).
type histograms struct {
	shards [64]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
	}
}

func newHistograms() *histograms {
	hs := &histograms{}
	for i := range hs.shards {
		hs.shards[i].h = hdrhistogram.New(1, 120_000_000, 3)
	}
	return hs
}

func (hs *histograms) record(shard int, micros int64) {
	s := &hs.shards[shard%len(hs.shards)]
	s.mu.Lock()
	_ = s.h.RecordValue(max(micros, 1))
	s.mu.Unlock()
}

func (hs *histograms) merged() *hdrhistogram.Histogram {
	out := hdrhistogram.New(1, 120_000_000, 3)
	for i := range hs.shards {
		s := &hs.shards[i]
		s.mu.Lock()
		out.Merge(s.h)
		s.mu.Unlock()
	}
	return out
}

// subscriber tracks one subscriber's stream.
type subscriber struct {
	idx   int
	topic string
	last  map[int]int64 // publisher → last sequence seen
	got   atomic.Int64  // unique events received
	dup   atomic.Int64
	order atomic.Int64
}

// check records one received payload.
func (s *subscriber) check(data string, hs *histograms, now int64) {
	pub, seq, sent, ok := parsePayload(data)
	if !ok {
		return
	}
	last, seen := s.last[pub]
	switch {
	case !seen || seq > last:
		// A jump within one publisher's sequence is not loss by itself:
		// a publisher spreads its sequence over topics. Loss is computed
		// from the totals.
		s.last[pub] = seq
		s.got.Add(1)
		hs.record(s.idx, (now-sent)/1000)
	case seq == last:
		s.dup.Add(1)
	default:
		s.order.Add(1)
	}
}

// counters aggregate a run's progress.
type counters struct {
	published   atomic.Int64
	pubErrors   atomic.Int64
	received    atomic.Int64
	connectErrs atomic.Int64
	disconnects atomic.Int64
	perTopic    []atomic.Int64
}

func newHTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        conns + 64,
		MaxIdleConnsPerHost: conns + 64,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}}
}
