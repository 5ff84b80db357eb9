package sse_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/reqlife"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/internal/transport/sse"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newHub(t testing.TB, opts *hub.Options) *hub.Hub {
	t.Helper()
	b := memory.New(&memory.Options{Epoch: "ep"})
	h := hub.New(b, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { h.Close(); cancel(); <-done; b.Close() })
	return h
}

// rawStream is a subscription read over a plain TCP connection, so that
// tests see exactly what the server sends and control the socket.
type rawStream struct {
	t    testing.TB
	c    net.Conn
	resp *http.Response
	got  bytes.Buffer
}

func openRaw(t testing.TB, srvURL, target string, hdr ...string) *rawStream {
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
	c.SetReadDeadline(time.Now().Add(testkit.Timeout))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &rawStream{t: t, c: c, resp: resp}
}

// until reads the body until it holds want.
func (s *rawStream) until(want string) {
	s.t.Helper()
	s.c.SetReadDeadline(time.Now().Add(testkit.Timeout))
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
	s.c.SetReadDeadline(time.Now().Add(testkit.Timeout))
	b, err := io.ReadAll(s.resp.Body)
	s.got.Write(b)
	return err
}

type env struct {
	hub     *hub.Hub
	metrics *metrics.Metrics
	server  *sse.Server
	handler *sse.Handler
	srv     *httptest.Server
	ended   atomic.Int64 // requests ended (reqlife)
}

// newEnv serves /events behind a middleware that tracks request lifetimes
// as the app's does; mutate may change the server and handler before the
// first request.
func newEnv(t testing.TB, hopts *hub.Options, mutate func(*sse.Server, *sse.Handler)) *env {
	t.Helper()
	h := newHub(t, hopts)
	e := &env{hub: h, metrics: metrics.New(h)}
	e.server = &sse.Server{Retry: 1500 * time.Millisecond, KeepAlive: time.Hour, Metrics: e.metrics, Logger: slog.New(slog.DiscardHandler)}
	e.handler = &sse.Handler{Hub: h, Server: e.server}
	if mutate != nil {
		mutate(e.server, e.handler)
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
		if err := e.server.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return e
}

func (e *env) publish(t testing.TB, topic, data string) {
	t.Helper()
	if _, err := e.hub.Publish(context.Background(), &pubsub.Message{Topics: []string{topic}, Data: data}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) connections() float64 {
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

// syncRecorder is a ResponseWriter safe to read while a stream writes to
// it. It cannot be hijacked: a stream on it takes the standard path.
type syncRecorder struct {
	mu     sync.Mutex
	header http.Header
	body   strings.Builder
	status int
	fail   error // returned by Write when set
}

func (w *syncRecorder) Header() http.Header { return w.header }
func (w *syncRecorder) WriteHeader(s int)   { w.status = s }
func (w *syncRecorder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail != nil {
		return 0, w.fail
	}
	return w.body.Write(p)
}
func (w *syncRecorder) Flush() {}
func (w *syncRecorder) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.body.String()
}

func (w *syncRecorder) waitFor(t *testing.T, want string) {
	t.Helper()
	testkit.WaitFor(t, "the stream to hold "+want, func() bool { return strings.Contains(w.String(), want) })
}
