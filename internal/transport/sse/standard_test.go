package sse_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/internal/transport/sse"
	"github.com/heraldpush/herald/pubsub"
)

// serveStandard serves sub on w from a goroutine (w cannot be hijacked:
// the standard path) and returns a channel closed when Serve returns.
func serveStandard(s *sse.Server, w *syncRecorder, ctx context.Context, sub *hub.Subscription, st sse.Stream) <-chan struct{} {
	done := make(chan struct{})
	r := httptest.NewRequest("GET", "/events?topic=a", nil).WithContext(ctx)
	go func() {
		defer close(done)
		s.Serve(w, r, sub, st)
	}()
	return done
}

func wait(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(testkit.Timeout):
		t.Fatalf("%s did not happen", what)
	}
}

func TestStandardPath(t *testing.T) {
	h := newHub(t, nil)
	sub, err := h.Subscribe(context.Background(), hub.Request{Topics: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	w := &syncRecorder{header: http.Header{"Content-Length": {"9"}}}
	s := &sse.Server{Retry: 1500 * time.Millisecond, KeepAlive: 30 * time.Millisecond}
	done := serveStandard(s, w, context.Background(), sub, sse.Stream{})
	w.waitFor(t, ": ok\n\nretry: 1500\n\nid: ep-0\n\n")
	w.waitFor(t, "id: ep-0\n\n:\n\n") // a keep-alive comment when idle
	if _, err := h.Publish(context.Background(), &pubsub.Message{Topics: []string{"a"}, Type: "t", Data: "x\ny"}); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, "id: ep-1\nevent: t\ndata: x\ndata: y\n\n")
	h.Disconnect("a")
	wait(t, done, "Serve returning when its subscription ended")
	if w.status != 200 || w.header.Get("Content-Type") != "text/event-stream; charset=utf-8" || w.header.Get("Content-Length") != "" {
		t.Errorf("status %d headers %v", w.status, w.header)
	}
	if h.TopicCounts()["a"] != 0 {
		t.Error("the subscription is still open")
	}
}

func TestStandardPathEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(h *hub.Hub, w *syncRecorder, cancel context.CancelFunc)
		st   sse.Stream
		want string
	}{
		{"write error", func(h *hub.Hub, w *syncRecorder, _ context.CancelFunc) {
			w.mu.Lock()
			w.fail = errors.New("broken pipe")
			w.mu.Unlock()
			h.Publish(context.Background(), &pubsub.Message{Topics: []string{"a"}, Data: "x"})
		}, sse.Stream{}, ""},
		{"context", func(_ *hub.Hub, _ *syncRecorder, cancel context.CancelFunc) { cancel() }, sse.Stream{}, ""},
		{"credentials expire", func(*hub.Hub, *syncRecorder, context.CancelFunc) {},
			sse.Stream{Expires: time.Now().Add(50 * time.Millisecond)}, "event: herald.auth-expired\ndata: {\"reason\":\"token expired\"}\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub(t, nil)
			sub, err := h.Subscribe(context.Background(), hub.Request{Topics: []string{"a"}})
			if err != nil {
				t.Fatal(err)
			}
			w := &syncRecorder{header: http.Header{}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := serveStandard(&sse.Server{}, w, ctx, sub, tc.st)
			if tc.st.Expires.IsZero() {
				w.waitFor(t, "id: ep-0\n\n")
			}
			tc.run(h, w, cancel)
			wait(t, done, "Serve returning")
			if !strings.HasSuffix(w.String(), tc.want) {
				t.Errorf("stream %q does not end with %q", w.String(), tc.want)
			}
			testkit.WaitFor(t, "the subscription to close", func() bool { return h.TopicCounts()["a"] == 0 })
		})
	}
}

// A stream whose Finish refuses a clean end is aborted on the standard
// path: the handler panics with http.ErrAbortHandler, as net/http expects.
func TestStandardPathAbort(t *testing.T) {
	h := newHub(t, nil)
	sub, err := h.Subscribe(context.Background(), hub.Request{Topics: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	w := &syncRecorder{header: http.Header{}}
	panicked := make(chan any, 1)
	finished := make(chan error, 1)
	go func() {
		defer func() { panicked <- recover() }()
		(&sse.Server{}).Serve(w, httptest.NewRequest("GET", "/", nil), sub, sse.Stream{
			Finish: func(err error) bool { finished <- err; return false },
		})
	}()
	w.waitFor(t, "id: ep-0\n\n")
	h.Disconnect("a")
	if err := <-finished; !errors.Is(err, hub.ErrKicked) {
		t.Errorf("Finish got %v, want hub.ErrKicked", err)
	}
	if p := <-panicked; p != http.ErrAbortHandler {
		t.Fatalf("Serve panicked with %v, want http.ErrAbortHandler", p)
	}
}
