package eventstream_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/eventstream"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		name, url, header string
		max               int
		topics            []string
		lastID            string
		status            int
	}{
		{"topics", "/events?topic=a&topic=b", "", 0, []string{"a", "b"}, "", 0},
		{"header", "/events?topic=a", "e-1", 0, []string{"a"}, "e-1", 0},
		{"query", "/events?topic=a&lastEventID=e-2", "", 0, []string{"a"}, "e-2", 0},
		{"header wins", "/events?topic=a&lastEventID=e-2", "e-1", 0, []string{"a"}, "e-1", 0},
		{"no topic", "/events", "", 0, nil, "", 400},
		{"too many", "/events?topic=a&topic=b&topic=c", "", 2, nil, "", 400},
		{"at the limit", "/events?topic=a&topic=b", "", 2, []string{"a", "b"}, "", 0},
		{"bad topic", "/events?topic=%00", "", 0, nil, "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.url, nil)
			if tc.header != "" {
				r.Header.Set("Last-Event-ID", tc.header)
			}
			req, err := eventstream.ParseRequest(r, tc.max)
			var he *access.Error
			if tc.status != 0 {
				if !errors.As(err, &he) || he.Status != tc.status {
					t.Fatalf("err %v, want status %d", err, tc.status)
				}
				return
			}
			if err != nil || strings.Join(req.Topics, ",") != strings.Join(tc.topics, ",") || req.LastEventID != tc.lastID {
				t.Fatalf("got %+v, %v", req, err)
			}
		})
	}
}

func newHub(t *testing.T) *hub.Hub {
	t.Helper()
	b := memory.New(&memory.Options{Epoch: "ep"})
	h := hub.New(b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { h.Close(); cancel(); <-done; b.Close() })
	return h
}

// syncRecorder is a ResponseWriter safe to read while Stream writes.
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

func waitFor(t *testing.T, w *syncRecorder, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(w.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("stream %q lacks %q", w.String(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStream(t *testing.T) {
	h := newHub(t)
	sub, err := h.Subscribe(context.Background(), hub.Request{Topics: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	w := &syncRecorder{header: http.Header{"Content-Length": {"9"}}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		eventstream.Stream(context.Background(), w, sub, eventstream.StreamOptions{Retry: 1500 * time.Millisecond, KeepAlive: 30 * time.Millisecond})
	}()
	waitFor(t, w, ": ok\n\nretry: 1500\n\nid: ep-0\n\n")
	waitFor(t, w, "id: ep-0\n\n:\n\n") // a keep-alive comment when idle
	if _, err := h.Publish(context.Background(), &pubsub.Message{Topics: []string{"a"}, Type: "t", Data: "x\ny"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, w, "id: ep-1\nevent: t\ndata: x\ndata: y\n\n")
	h.Disconnect("a")
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Stream did not return when its subscription ended")
	}
	if w.status != 200 || w.header.Get("Content-Type") != "text/event-stream; charset=utf-8" || w.header.Get("Content-Length") != "" {
		t.Errorf("status %d headers %v", w.status, w.header)
	}
}

func TestStreamEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(h *hub.Hub, w *syncRecorder, cancel context.CancelFunc)
		opts eventstream.StreamOptions
		want string
	}{
		{"write error", func(h *hub.Hub, w *syncRecorder, _ context.CancelFunc) {
			w.mu.Lock()
			w.fail = errors.New("broken pipe")
			w.mu.Unlock()
			h.Publish(context.Background(), &pubsub.Message{Topics: []string{"a"}, Data: "x"})
		}, eventstream.StreamOptions{}, ""},
		{"context", func(_ *hub.Hub, _ *syncRecorder, cancel context.CancelFunc) { cancel() }, eventstream.StreamOptions{}, ""},
		{"credentials expire", func(*hub.Hub, *syncRecorder, context.CancelFunc) {},
			eventstream.StreamOptions{Expires: time.Now().Add(50 * time.Millisecond)}, "event: herald.auth-expired\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHub(t)
			sub, err := h.Subscribe(context.Background(), hub.Request{Topics: []string{"a"}})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			w := &syncRecorder{header: http.Header{}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan struct{})
			go func() {
				defer close(done)
				eventstream.Stream(ctx, w, sub, tc.opts)
			}()
			waitFor(t, w, "id: ep-0\n\n")
			tc.run(h, w, cancel)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Stream did not return")
			}
			if !strings.Contains(w.String(), tc.want) {
				t.Errorf("stream %q lacks %q", w.String(), tc.want)
			}
		})
	}
}
