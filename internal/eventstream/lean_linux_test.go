package eventstream

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub/memory"
)

// TestLeanWatchByReading: where epoll is unavailable, a lean connection's
// dead peer is found by a goroutine blocked in a read.
func TestLeanWatchByReading(t *testing.T) {
	b := memory.New(&memory.Options{Epoch: "ep"})
	h := hub.New(b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	defer func() { h.Close(); cancel(); <-done; b.Close() }()
	hd := &Handler{Hub: h, KeepAlive: time.Hour}
	l := hd.leanState()
	l.mu.Lock()
	l.watch.failed = true
	l.mu.Unlock()
	srv := httptest.NewServer(hd)
	defer srv.Close()

	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /events?topic=a HTTP/1.1\r\nHost: test\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || !resp.Close {
		t.Fatalf("not on the lean path: %v", err)
	}
	for h.TopicCounts()["a"] != 1 {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for h.TopicCounts()["a"] != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the closed connection's subscription is still open")
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.mu.Lock()
	running := l.watch.running
	l.mu.Unlock()
	if running {
		t.Fatal("the epoll watcher ran")
	}
}
