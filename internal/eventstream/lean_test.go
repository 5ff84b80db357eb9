package eventstream_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/eventstream"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/reqlife"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
	"github.com/heraldpush/herald/sse"
)

// rawStream is a subscription read over a plain TCP connection, so that
// tests see exactly what the server sends and control the socket.
type rawStream struct {
	t    *testing.T
	c    net.Conn
	resp *http.Response
	got  bytes.Buffer
}

func openRaw(t *testing.T, srvURL, target string, hdr ...string) *rawStream {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(srvURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "GET " + target + " HTTP/1.1\r\nHost: test\r\n"
	for _, h := range hdr {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &rawStream{t: t, c: c, resp: resp}
}

// until reads the body until it holds want.
func (s *rawStream) until(want string) {
	s.t.Helper()
	s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	for !strings.Contains(s.got.String(), want) {
		n, err := s.resp.Body.Read(buf)
		s.got.Write(buf[:n])
		if err != nil && !strings.Contains(s.got.String(), want) {
			s.t.Fatalf("stream %q lacks %q: %v", s.got.String(), want, err)
		}
	}
}

// end reads the body to its end and reports how it ended.
func (s *rawStream) end() error {
	s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(s.resp.Body)
	s.got.Write(b)
	return err
}

type leanEnv struct {
	hub     *hub.Hub
	metrics *metrics.Metrics
	handler *eventstream.Handler
	srv     *httptest.Server
	ended   atomic.Int64 // requests ended (reqlife)
}

// newLeanEnv serves a Handler behind a middleware that tracks request
// lifetimes as the app's does.
func newLeanEnv(t testing.TB, hopts *hub.Options, mutate func(*eventstream.Handler)) *leanEnv {
	t.Helper()
	b := memory.New(&memory.Options{Epoch: "ep"})
	h := hub.New(b, hopts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	e := &leanEnv{hub: h, metrics: metrics.New(h)}
	e.handler = &eventstream.Handler{Hub: h, Retry: 1500 * time.Millisecond, KeepAlive: time.Hour, Metrics: e.metrics, Logger: slog.New(slog.DiscardHandler)}
	if mutate != nil {
		mutate(e.handler)
	}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, life := reqlife.New(r.Context())
		life.OnEnd(func() { e.ended.Add(1) })
		defer life.Returned()
		e.handler.ServeHTTP(w, r.WithContext(ctx))
	}))
	t.Cleanup(func() {
		e.srv.Close()
		h.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := e.handler.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		cancel()
		<-done
		b.Close()
	})
	return e
}

func (e *leanEnv) publish(t *testing.T, topic, data string) {
	t.Helper()
	if _, err := e.hub.Publish(context.Background(), &pubsub.Message{Topics: []string{topic}, Data: data}); err != nil {
		t.Fatal(err)
	}
}

func (e *leanEnv) connections() float64 {
	return value(e.metrics.Connections.WithLabelValues("sse"))
}

func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLeanWire checks what a cleartext HTTP/1.1 subscriber receives on the
// lean path: the standard path's headers and bytes, chunked, with
// Connection: close, and a clean end.
func TestLeanWire(t *testing.T) {
	e := newLeanEnv(t, nil, func(h *eventstream.Handler) { h.KeepAlive = 40 * time.Millisecond })
	s := openRaw(t, e.srv.URL, "/events?topic=a")
	r := s.resp
	for k, want := range map[string]string{
		"Content-Type":      "text/event-stream; charset=utf-8",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
		"Content-Length":    "",
	} {
		if got := r.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if !r.Close {
		t.Error("no Connection: close")
	}
	if r.StatusCode != 200 || len(r.TransferEncoding) != 1 || r.TransferEncoding[0] != "chunked" || r.Header.Get("Date") == "" {
		t.Errorf("status %d, transfer encoding %v, headers %v", r.StatusCode, r.TransferEncoding, r.Header)
	}
	s.until(": ok\n\nretry: 1500\n\nid: ep-0\n\n")
	if !strings.HasPrefix(s.got.String(), ": ok\n\nretry: 1500\n\nid: ep-0\n\n") {
		t.Fatalf("stream starts %q", s.got.String())
	}
	s.until("id: ep-0\n\n:\n\n") // keep-alives from the wheel
	e.publish(t, "a", "x\ny")
	s.until("id: ep-1\ndata: x\ndata: y\n\n")
	if n := e.connections(); n != 1 {
		t.Errorf("connections gauge %v, want 1", n)
	}
	if e.ended.Load() != 0 {
		t.Error("the request ended while its stream is open")
	}
	e.hub.Disconnect("a")
	if err := s.end(); err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
	// The server closes the connection after the last chunk.
	s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := s.c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the stream: read %d, %v; want EOF", n, err)
	}
	eventually(t, "the request to end", func() bool { return e.ended.Load() == 1 && e.connections() == 0 })
	if got := value(e.metrics.Delivered.WithLabelValues("sse")); got != 2 {
		t.Errorf("events written %v, want 2 (position marker, event)", got)
	}
}

// TestLeanPeerGone: a subscriber that disconnects is noticed at once, with
// no write to fail (keep-alives are an hour apart): its subscription,
// connection count and request end.
func TestLeanPeerGone(t *testing.T) {
	e := newLeanEnv(t, nil, nil)
	s := openRaw(t, e.srv.URL, "/events?topic=gone")
	s.until("id: ep-0\n\n")
	if e.hub.TopicCounts()["gone"] != 1 {
		t.Fatal("not subscribed")
	}
	s.c.Close()
	eventually(t, "the subscription to end", func() bool {
		return e.hub.TopicCounts()["gone"] == 0 && e.connections() == 0 && e.ended.Load() == 1
	})
}

// TestLeanNoGoroutinePerConnection: idle lean streams hold no goroutine.
func TestLeanNoGoroutinePerConnection(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("without epoll, each lean connection has a reading goroutine")
	}
	e := newLeanEnv(t, nil, nil)
	openRaw(t, e.srv.URL, "/events?topic=warm").until("id: ep-0\n\n")
	before := runtime.NumGoroutine()
	const n = 50
	for range n {
		openRaw(t, e.srv.URL, "/events?topic=idle").until("id: ep-0\n\n")
	}
	time.Sleep(50 * time.Millisecond) // let net/http's goroutines of the handshakes exit
	if d := runtime.NumGoroutine() - before; d > 5 {
		t.Fatalf("%d more goroutines for %d idle streams", d, n)
	}
	e.publish(t, "idle", "to all")
	if d := runtime.NumGoroutine() - before; d > 5+runtime.GOMAXPROCS(0) {
		t.Fatalf("%d more goroutines while delivering", d)
	}
}

// TestLeanAuthExpiry: the stream of a subscriber whose credentials expire
// gets herald.auth-expired, then ends.
func TestLeanAuthExpiry(t *testing.T) {
	e := newLeanEnv(t, nil, func(h *eventstream.Handler) {
		h.Access = access.DeciderFunc(func(*http.Request, access.Query) (access.Decision, error) {
			return access.Decision{Expires: time.Now().Add(50 * time.Millisecond)}, nil
		})
	})
	s := openRaw(t, e.srv.URL, "/events?topic=a")
	if err := s.end(); err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
	if !strings.HasSuffix(s.got.String(), "event: herald.auth-expired\ndata: {\"reason\":\"token expired\"}\n\n") {
		t.Fatalf("stream %q", s.got.String())
	}
}

// stall opens a subscription that never reads, with a small receive
// buffer.
func stall(t *testing.T, srvURL, topic string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(srvURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.(*net.TCPConn).SetReadBuffer(4096)
	io.WriteString(c, "GET /events?topic="+topic+" HTTP/1.1\r\nHost: test\r\n\r\n")
	return c
}

func fill(t *testing.T, e *leanEnv, topic string, n int, keepGoing func() bool) {
	t.Helper()
	data := strings.Repeat("z", 1024)
	for i := 0; i < n && keepGoing(); i++ {
		e.publish(t, topic, data)
	}
}

// TestLeanSlowConsumer: a subscriber that stops reading is cut off when its
// queue overflows, and counted; publishing never waits for it.
func TestLeanSlowConsumer(t *testing.T) {
	e := newLeanEnv(t, &hub.Options{QueueBytes: 64 << 10}, func(h *eventstream.Handler) { h.WriteTimeout = time.Minute })
	stall(t, e.srv.URL, "slow")
	eventually(t, "the stalled subscriber", func() bool { return e.hub.TopicCounts()["slow"] == 1 })
	fill(t, e, "slow", 20_000, func() bool { return e.hub.Stats().SlowDisconnects == 0 })
	eventually(t, "the slow subscriber to be cut off", func() bool {
		return e.hub.Stats().SlowDisconnects == 1 && e.hub.TopicCounts()["slow"] == 0 && e.connections() == 0
	})
}

// TestLeanWriteTimeout: a write that the subscriber does not take within
// the write timeout ends the stream, however big its queue may be.
func TestLeanWriteTimeout(t *testing.T) {
	e := newLeanEnv(t, &hub.Options{QueueBytes: 1 << 30}, func(h *eventstream.Handler) { h.WriteTimeout = 100 * time.Millisecond })
	stall(t, e.srv.URL, "stuck")
	eventually(t, "the stalled subscriber", func() bool { return e.hub.TopicCounts()["stuck"] == 1 })
	fill(t, e, "stuck", 20_000, func() bool { return e.hub.TopicCounts()["stuck"] == 1 })
	eventually(t, "the stuck subscriber to be cut off", func() bool {
		return e.hub.TopicCounts()["stuck"] == 0 && e.connections() == 0 && e.ended.Load() == 1
	})
	// Its queue (1 GiB) cannot have overflowed: the write timeout cut it
	// off, and that counts as a slow-consumer disconnect too.
	if got := e.hub.Stats().SlowDisconnects; got != 1 {
		t.Errorf("slow-consumer disconnects = %d, want 1 (the write timeout)", got)
	}
}

// TestLeanShutdown: Shutdown waits for the lean streams the closed hub
// ends (they end cleanly), and closes those still stuck when its context
// ends.
func TestLeanShutdown(t *testing.T) {
	e := newLeanEnv(t, &hub.Options{QueueBytes: 1 << 30}, func(h *eventstream.Handler) { h.WriteTimeout = time.Hour })
	s := openRaw(t, e.srv.URL, "/events?topic=a")
	s.until("id: ep-0\n\n")
	stall(t, e.srv.URL, "b")
	eventually(t, "both subscribers", func() bool { return e.connections() == 2 })
	fill(t, e, "b", 4000, func() bool { return true }) // more than the socket buffers hold
	e.hub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := e.handler.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a stuck stream: %v, want the context's error", err)
	}
	if err := s.end(); err != nil {
		t.Fatalf("the stream did not end cleanly: %v", err)
	}
	eventually(t, "every stream to end", func() bool { return e.connections() == 0 && e.ended.Load() == 2 })
	// (The stalled client's side may take long to see the end: with a
	// tiny receive window the kernel sends the rest it holds slowly.)
}

// TestStandardPathWhereLeanCannot: HTTP/1.0 and TLS requests keep the
// standard path (no hijack: no Connection: close from the lean path).
func TestStandardPathWhereLeanCannot(t *testing.T) {
	e := newLeanEnv(t, nil, nil)
	t.Run("HTTP/1.0", func(t *testing.T) {
		c, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /events?topic=a HTTP/1.0\r\nHost: test\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.TransferEncoding) != 0 {
			t.Fatalf("HTTP/1.0 response with transfer encoding %v", resp.TransferEncoding)
		}
		b := make([]byte, 64)
		n, _ := io.ReadAtLeast(resp.Body, b, len(": ok\n\n"))
		if !strings.HasPrefix(string(b[:n]), ": ok\n\n") {
			t.Fatalf("body %q", b[:n])
		}
	})
	t.Run("TLS", func(t *testing.T) {
		srv := httptest.NewTLSServer(e.handler)
		defer srv.Close()
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
		defer tr.CloseIdleConnections()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events?topic=a", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.Header.Get("Connection") != "" || resp.Close {
			t.Fatalf("TLS took the lean path: %v", resp.Header)
		}
		b := make([]byte, 64)
		n, _ := io.ReadAtLeast(resp.Body, b, len(": ok\n\n"))
		if !strings.HasPrefix(string(b[:n]), ": ok\n\n") {
			t.Fatalf("body %q", b[:n])
		}
	})
}

// TestLeanPartialWrites: a subscriber that reads late, through a small
// receive buffer, still gets every event exactly once and in order, across
// writes cut short by a full socket buffer.
func TestLeanPartialWrites(t *testing.T) {
	e := newLeanEnv(t, &hub.Options{QueueBytes: 64 << 20}, func(h *eventstream.Handler) { h.WriteTimeout = 10 * time.Second })
	c, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A fixed receive buffer (no autotuning), big enough to stay clear of
	// the kernel's small-window stalls on loopback; the 6 MB published
	// exceed it and the server's send buffer (4 MB at most).
	c.(*net.TCPConn).SetReadBuffer(256 << 10)
	io.WriteString(c, "GET /events?topic=p HTTP/1.1\r\nHost: test\r\n\r\n")
	eventually(t, "the subscriber", func() bool { return e.hub.TopicCounts()["p"] == 1 })
	const n = 8000
	for i := range n {
		e.publish(t, "p", fmt.Sprintf("%d-%s", i+1, strings.Repeat("w", 700)))
	}
	time.Sleep(100 * time.Millisecond) // let the buffers fill
	if e.hub.Stats().SlowDisconnects != 0 {
		t.Fatal("cut off")
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	next := 1
	for ev, err := range sse.Read(resp.Body) {
		if err != nil {
			t.Fatalf("after %d events: %v", next-1, err)
		}
		if ev.Data == "" {
			continue
		}
		if want := fmt.Sprintf("%d-", next); !strings.HasPrefix(ev.Data, want) {
			t.Fatalf("event %q, want %q...", ev.Data[:min(len(ev.Data), 12)], want)
		}
		if next++; next > n {
			break
		}
	}
}
