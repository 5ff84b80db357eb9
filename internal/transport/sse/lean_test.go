package sse_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/internal/transport/sse"
	"github.com/heraldpush/herald/pubsub"
	ssewire "github.com/heraldpush/herald/sse"
)

// TestLeanWire checks what a cleartext HTTP/1.1 subscriber receives on the
// lean path: the standard path's headers and bytes, chunked, with
// Connection: close, and a clean end.
func TestLeanWire(t *testing.T) {
	e := newEnv(t, nil, func(s *sse.Server, _ *sse.Handler) { s.KeepAlive = 40 * time.Millisecond })
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
	testkit.WaitFor(t, "the request to end", func() bool { return e.ended.Load() == 1 && e.connections() == 0 })
	if got := value(e.metrics.Delivered.WithLabelValues("sse")); got != 2 {
		t.Errorf("events written %v, want 2 (position marker, event)", got)
	}
}

// TestLeanPeerGone: a subscriber that disconnects is noticed at once, with
// no write to fail (keep-alives are an hour apart): its subscription,
// connection count and request end.
func TestLeanPeerGone(t *testing.T) {
	e := newEnv(t, nil, nil)
	s := openRaw(t, e.srv.URL, "/events?topic=gone")
	s.until("id: ep-0\n\n")
	if e.hub.TopicCounts()["gone"] != 1 {
		t.Fatal("not subscribed")
	}
	s.c.Close()
	testkit.WaitFor(t, "the subscription to end", func() bool {
		return e.hub.TopicCounts()["gone"] == 0 && e.connections() == 0 && e.ended.Load() == 1
	})
}

// TestLeanNoGoroutinePerConnection: idle lean streams hold no goroutine.
func TestLeanNoGoroutinePerConnection(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("without epoll, each lean connection has a reading goroutine")
	}
	e := newEnv(t, nil, nil)
	openRaw(t, e.srv.URL, "/events?topic=warm").until("id: ep-0\n\n")
	before := runtime.NumGoroutine()
	const n = 50
	for range n {
		openRaw(t, e.srv.URL, "/events?topic=idle").until("id: ep-0\n\n")
	}
	// net/http's goroutines of the handshakes exit once the handlers
	// return; what stays is the streams'.
	testkit.WaitFor(t, fmt.Sprintf("at most 5 more goroutines for %d idle streams (%d now)", n, runtime.NumGoroutine()-before), func() bool {
		return runtime.NumGoroutine()-before <= 5
	})
	e.publish(t, "idle", "to all")
	if d := runtime.NumGoroutine() - before; d > 5+runtime.GOMAXPROCS(0) {
		t.Fatalf("%d more goroutines while delivering", d)
	}
}

// TestLeanAuthExpiry: the stream of a subscriber whose credentials expire
// gets herald.auth-expired, then ends.
func TestLeanAuthExpiry(t *testing.T) {
	e := newEnv(t, nil, func(_ *sse.Server, h *sse.Handler) {
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
func stall(t testing.TB, srvURL, topic string) net.Conn {
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

func fill(t *testing.T, e *env, topic string, n int, keepGoing func() bool) {
	t.Helper()
	data := strings.Repeat("z", 1024)
	for i := 0; i < n && keepGoing(); i++ {
		e.publish(t, topic, data)
	}
}

// TestLeanSlowConsumer: a subscriber that stops reading is cut off when its
// queue overflows, and counted; publishing never waits for it. A write
// blocked at the cut-off (the socket was full) is not cut short: once the
// client reads again it gets whole events, then the stream's clean end, and
// the connection is gone.
func TestLeanSlowConsumer(t *testing.T) {
	e := newEnv(t, &hub.Options{QueueBytes: 64 << 10}, func(s *sse.Server, _ *sse.Handler) { s.WriteTimeout = time.Minute })
	c := stall(t, e.srv.URL, "slow")
	testkit.WaitFor(t, "the stalled subscriber", func() bool { return e.hub.TopicCounts()["slow"] == 1 })
	fill(t, e, "slow", 20_000, func() bool { return e.hub.Stats().SlowDisconnects == 0 })
	if n := e.hub.Stats().SlowDisconnects; n != 1 {
		t.Fatalf("%d slow disconnects, want 1", n)
	}
	c.SetReadDeadline(time.Now().Add(testkit.Timeout))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("the slow subscriber's stream did not end cleanly: %v", err)
	}
	testkit.WaitFor(t, "the slow subscriber's connection to end", func() bool {
		return e.hub.TopicCounts()["slow"] == 0 && e.connections() == 0
	})
}

// TestLeanWriteTimeout: a write that the subscriber does not take within
// the write timeout ends the stream, however big its queue may be.
func TestLeanWriteTimeout(t *testing.T) {
	e := newEnv(t, &hub.Options{QueueBytes: 1 << 30}, func(s *sse.Server, _ *sse.Handler) { s.WriteTimeout = 100 * time.Millisecond })
	stall(t, e.srv.URL, "stuck")
	testkit.WaitFor(t, "the stalled subscriber", func() bool { return e.hub.TopicCounts()["stuck"] == 1 })
	fill(t, e, "stuck", 20_000, func() bool { return e.hub.TopicCounts()["stuck"] == 1 })
	testkit.WaitFor(t, "the stuck subscriber to be cut off", func() bool {
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
	e := newEnv(t, &hub.Options{QueueBytes: 1 << 30}, func(s *sse.Server, _ *sse.Handler) { s.WriteTimeout = time.Hour })
	s := openRaw(t, e.srv.URL, "/events?topic=a")
	s.until("id: ep-0\n\n")
	stall(t, e.srv.URL, "b")
	testkit.WaitFor(t, "both subscribers", func() bool { return e.connections() == 2 })
	fill(t, e, "b", 4000, func() bool { return true }) // more than the socket buffers hold
	e.hub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := e.server.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a stuck stream: %v, want the context's error", err)
	}
	if err := s.end(); err != nil {
		t.Fatalf("the stream did not end cleanly: %v", err)
	}
	testkit.WaitFor(t, "every stream to end", func() bool { return e.connections() == 0 && e.ended.Load() == 2 })
	// (The stalled client's side may take long to see the end: with a
	// tiny receive window the kernel sends the rest it holds slowly.)
}

// TestStandardPathWhereLeanCannot: HTTP/1.0 and TLS requests keep the
// standard path (no hijack: no Connection: close from the lean path).
func TestStandardPathWhereLeanCannot(t *testing.T) {
	e := newEnv(t, nil, nil)
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
	e := newEnv(t, &hub.Options{QueueBytes: 64 << 20}, func(s *sse.Server, _ *sse.Handler) { s.WriteTimeout = 10 * time.Second })
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
	testkit.WaitFor(t, "the subscriber", func() bool { return e.hub.TopicCounts()["p"] == 1 })
	const n = 8000
	for i := range n {
		e.publish(t, "p", fmt.Sprintf("%d-%s", i+1, strings.Repeat("w", 700)))
	}
	if e.hub.Stats().SlowDisconnects != 0 {
		t.Fatal("cut off")
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	next := 1
	for ev, err := range ssewire.Read(resp.Body) {
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

// A face's stream options on the lean path: its preamble after the
// opening, its encoder (events it leaves out are not written), no retry
// hint when asked, and Done once the stream is over.
func TestLeanStreamOptions(t *testing.T) {
	done := make(chan struct{})
	e := newEnv(t, nil, nil)
	e.handler = nil
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, err := e.hub.Subscribe(r.Context(), hub.Request{Topics: []string{"o"}})
		if err != nil {
			e.server.Refuse(w, r, err)
			return
		}
		e.server.Serve(w, r, sub, sse.Stream{
			Preamble: []byte("event: hello\ndata: hi\n\n"),
			NoRetry:  true,
			Encode: func(ev *hub.Event) []byte {
				if ev.Kind != hub.KindMessage || ev.Msg.Data == "skip" {
					return nil
				}
				return []byte("data: <" + ev.Msg.Data + ">\n\n")
			},
			Done: func() { close(done) },
		})
	}))
	defer srv.Close()
	s := openRaw(t, srv.URL, "/")
	s.until("data: hi\n\n")
	if got := s.got.String(); got != ": ok\n\nevent: hello\ndata: hi\n\n" {
		t.Fatalf("stream starts %q, want the opening without retry, then the preamble", got)
	}
	e.publish(t, "o", "skip")
	e.publish(t, "o", "x")
	s.until("data: <x>\n\n")
	if strings.Contains(s.got.String(), "skip") || strings.Contains(s.got.String(), "id:") {
		t.Fatalf("stream %q holds events the encoder left out", s.got.String())
	}
	e.hub.Disconnect("o")
	if err := s.end(); err != nil {
		t.Fatalf("no clean end: %v", err)
	}
	wait(t, done, "Done")
}

// A stream whose Finish refuses a clean end is cut on the lean path: the
// client sees the connection close without the last chunk.
func TestLeanAbort(t *testing.T) {
	e := newEnv(t, nil, nil)
	finished := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, err := e.hub.Subscribe(r.Context(), hub.Request{Topics: []string{"cut"}})
		if err != nil {
			e.server.Refuse(w, r, err)
			return
		}
		e.server.Serve(w, r, sub, sse.Stream{Finish: func(err error) bool { finished <- err; return false }})
	}))
	defer srv.Close()
	s := openRaw(t, srv.URL, "/")
	if s.resp.Close {
		t.Error("a stream that may be cut announces Connection: close (Node's fetch would take the cut for its end)")
	}
	s.until("id: ep-0\n\n")
	e.publish(t, "cut", "last")
	s.until("data: last\n\n")
	e.hub.Disconnect("cut")
	if err := s.end(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("stream ended with %v, want a broken chunked body (io.ErrUnexpectedEOF)", err)
	}
	if err := <-finished; !errors.Is(err, hub.ErrKicked) {
		t.Errorf("Finish got %v, want hub.ErrKicked", err)
	}
}

// A subscription whose topics are all finished is answered 204, which
// stops an EventSource.
func TestFinishedIsNoContent(t *testing.T) {
	e := newEnv(t, nil, nil)
	m := &pubsub.Message{Topics: []string{"f"}, Data: "end", Final: true}
	if _, err := e.hub.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(e.srv.URL + "/events?topic=f&lastEventID=" + m.Pos.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d, Cache-Control %q; want 204, no-store", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
}
