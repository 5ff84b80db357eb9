package streams_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/streams"
	"github.com/heraldpush/herald/internal/transport/sse"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

// node is one Herald node's streams face over real HTTP: its own hub and
// Service on a broker that nodes may share.
type node struct {
	url string
	svc *streams.Service
}

// newNode serves streams from b (a fresh memory broker when nil); opts
// change the handler.
func newNode(t testing.TB, b pubsub.Broker, longPoll time.Duration, opts ...func(*streams.Handler)) *node {
	t.Helper()
	if b == nil {
		mb := memory.New(nil)
		t.Cleanup(func() { mb.Close() })
		b = mb
	}
	h := hub.New(b, nil)
	svc, err := streams.New(b, streams.Options{Hub: h})
	if err != nil {
		t.Fatal(err)
	}
	srv := &sse.Server{KeepAlive: time.Second}
	handler := &streams.Handler{Service: svc, SSE: srv, Prefix: "/v1/stream/", LongPollTimeout: longPoll, MaxBody: 1 << 20}
	for _, o := range opts {
		o(handler)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/stream/", handler)
	ts := httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.Run(ctx); close(done) }()
	t.Cleanup(func() {
		h.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(sctx)
		scancel()
		ts.Close()
		cancel()
		<-done
	})
	return &node{url: ts.URL + "/v1/stream/", svc: svc}
}

// reply is an HTTP answer.
type reply struct {
	status int
	hdr    http.Header
	body   string
}

// do sends a request to the stream at path with headers given as
// "Name: value" strings.
func (n *node) do(t testing.TB, method, path, body string, headers ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, n.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, string(b)}
}
