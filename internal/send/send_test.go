package send_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/send"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newHub(t *testing.T) *hub.Hub {
	t.Helper()
	b := memory.New(nil)
	h := hub.New(b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		h.Close()
		b.Close()
	})
	return h
}

func history(t *testing.T, h *hub.Hub, topic string) []string {
	t.Helper()
	b := h.Broker()
	snap, err := b.Read(context.Background(), pubsub.Query{Topics: []string{topic}, After: &pubsub.Position{Epoch: b.Epoch()}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range snap.Events {
		out = append(out, m.Data)
	}
	return out
}

// backend is a real HTTP server standing for the application backend.
type backend struct {
	*httptest.Server
	mu       sync.Mutex
	payloads []send.Payload
	keys     []string
	status   atomic.Int32 // answer; 0 means 204
	delay    atomic.Int64 // nanoseconds before answering
}

func newBackend(t *testing.T) *backend {
	b := &backend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := time.Duration(b.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		body, _ := io.ReadAll(r.Body)
		status := int(b.status.Load())
		if status == 0 {
			status = http.StatusNoContent
			var p send.Payload
			if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &p) != nil {
				http.Error(w, "bad request", 400)
				return
			}
			b.mu.Lock()
			b.payloads = append(b.payloads, p)
			b.keys = append(b.keys, r.Header.Get("Idempotency-Key"))
			b.mu.Unlock()
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) received() []send.Payload {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]send.Payload(nil), b.payloads...)
}

func service(h *hub.Hub, wh *send.Webhook) *send.Service {
	return &send.Service{Hub: h, Dedupe: send.NewDedupe(time.Minute, 100), Webhook: wh, Logger: slog.New(slog.DiscardHandler)}
}

func msg(client, id, topic, data string) *send.Message {
	return &send.Message{ClientID: client, MsgID: id, Topic: topic, Data: json.RawMessage(data)}
}

func status(err error) int {
	var e *access.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func TestWebhookGetsEachMessageOnce(t *testing.T) {
	h := newHub(t)
	be := newBackend(t)
	s := service(h, &send.Webhook{URL: be.URL, Timeout: time.Second})
	ctx := context.Background()

	ack, err := s.Deliver(ctx, nil, "ws", &send.Message{ClientID: "c1", MsgID: "m1", Topic: "chat", Event: "say", Data: json.RawMessage(`{"text": "hi"}`)})
	if err != nil || ack.ID == "" || ack.Duplicate {
		t.Fatalf("deliver: %+v %v", ack, err)
	}
	again, err := s.Deliver(ctx, nil, "http", &send.Message{ClientID: "c1", MsgID: "m1", Topic: "chat", Event: "say", Data: json.RawMessage(`{"text":"hi"}`)})
	if err != nil || again.ID != ack.ID || !again.Duplicate {
		t.Fatalf("retry: %+v %v, want duplicate of %s", again, err, ack.ID)
	}
	got := be.received()
	want := send.Payload{ClientID: "c1", MsgID: "m1", Topic: "chat", ID: ack.ID, Event: "say", Data: json.RawMessage(`{"text":"hi"}`), Transport: "ws"}
	if len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(want) {
		t.Fatalf("webhook got %+v, want once %+v", got, want)
	}
	if be.keys[0] != "c1:m1" {
		t.Fatalf("Idempotency-Key %q", be.keys[0])
	}
	if hist := history(t, h, "chat"); len(hist) != 1 || hist[0] != `{"text":"hi"}` {
		t.Fatalf("history %q", hist)
	}

	// Webhook only: no topic.
	ack, err = s.Deliver(ctx, nil, "http", msg("c1", "m2", "", `"just for the backend"`))
	if err != nil || ack.ID != "" {
		t.Fatalf("webhook-only: %+v %v", ack, err)
	}
	if got := be.received(); len(got) != 2 || string(got[1].Data) != `"just for the backend"` || got[1].Topic != "" {
		t.Fatalf("webhook got %+v", got)
	}
}

func TestWebhookFailureIsRetriedWithoutPublishingTwice(t *testing.T) {
	h := newHub(t)
	be := newBackend(t)
	s := service(h, &send.Webhook{URL: be.URL, Timeout: time.Second})
	ctx := context.Background()

	be.status.Store(http.StatusInternalServerError)
	_, err := s.Deliver(ctx, nil, "ws", msg("c", "m", "t", `"x"`))
	if status(err) != http.StatusBadGateway {
		t.Fatalf("backend down: %v, want 502", err)
	}
	if hist := history(t, h, "t"); len(hist) != 1 {
		t.Fatalf("history %q: the publish happened once", hist)
	}
	be.status.Store(0)
	ack, err := s.Deliver(ctx, nil, "http", msg("c", "m", "t", `"x"`))
	if err != nil || ack.Duplicate || ack.ID == "" {
		t.Fatalf("retry: %+v %v", ack, err)
	}
	if hist := history(t, h, "t"); len(hist) != 1 {
		t.Fatalf("history %q after the retry, want still one event", hist)
	}
	if got := be.received(); len(got) != 1 || got[0].ID != ack.ID {
		t.Fatalf("webhook got %+v", got)
	}

	// A refusal by the backend is final: the retry gets it again, and the
	// backend is not asked twice.
	be.status.Store(http.StatusBadRequest)
	if _, err := s.Deliver(ctx, nil, "ws", msg("c", "refused", "", `1`)); status(err) != http.StatusUnprocessableEntity {
		t.Fatalf("refused: %v, want 422", err)
	}
	be.status.Store(0)
	if _, err := s.Deliver(ctx, nil, "ws", msg("c", "refused", "", `1`)); status(err) != http.StatusUnprocessableEntity {
		t.Fatalf("refused, retried: %v, want 422 again", err)
	}
	if got := be.received(); len(got) != 1 {
		t.Fatalf("webhook got %d messages, want 1", len(got))
	}
}

func TestWebhookTimeout(t *testing.T) {
	h := newHub(t)
	be := newBackend(t)
	be.delay.Store(int64(time.Second))
	s := service(h, &send.Webhook{URL: be.URL, Timeout: 50 * time.Millisecond})
	_, err := s.Deliver(context.Background(), nil, "ws", msg("c", "m", "", `1`))
	if status(err) != http.StatusGatewayTimeout {
		t.Fatalf("slow backend: %v, want 504", err)
	}
	var se *access.Error
	if !errors.As(err, &se) || !se.Retryable() {
		t.Fatalf("a timeout must be retryable: %v", err)
	}
}

func TestConcurrentRetriesDeliverOnce(t *testing.T) {
	h := newHub(t)
	be := newBackend(t)
	be.delay.Store(int64(50 * time.Millisecond))
	s := service(h, &send.Webhook{URL: be.URL, Timeout: time.Second})
	var wg sync.WaitGroup
	acks := make([]send.Ack, 8)
	errs := make([]error, 8)
	for i := range acks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acks[i], errs[i] = s.Deliver(context.Background(), nil, "ws", msg("c", "m", "t", `"once"`))
		}()
	}
	wg.Wait()
	dups := 0
	for i := range acks {
		if errs[i] != nil || acks[i].ID != acks[0].ID {
			t.Fatalf("attempt %d: %+v %v", i, acks[i], errs[i])
		}
		if acks[i].Duplicate {
			dups++
		}
	}
	if dups != len(acks)-1 {
		t.Fatalf("%d duplicates, want %d", dups, len(acks)-1)
	}
	if got := be.received(); len(got) != 1 {
		t.Fatalf("webhook got %d, want 1", len(got))
	}
	if hist := history(t, h, "t"); len(hist) != 1 {
		t.Fatalf("history %q", hist)
	}
}

func TestRefusals(t *testing.T) {
	h := newHub(t)
	s := service(h, nil)
	s.MaxDataBytes = 10
	s.Access = access.DeciderFunc(func(r *http.Request, q access.Query) (access.Decision, error) {
		if len(q.Topics) > 0 && q.Topics[0] == "secret" {
			return access.Decision{}, access.Errorf(http.StatusForbidden, access.CodeTopicForbidden, "forbidden: topic secret")
		}
		return access.Decision{}, nil
	})
	cases := []struct {
		name   string
		m      *send.Message
		status int
		want   string
	}{
		{"no client", msg("", "m", "t", `1`), 400, "clientId"},
		{"space in id", msg("c", "a b", "t", `1`), 400, "printable"},
		{"no destination", msg("c", "m", "", `1`), 400, "topic"},
		{"too large", msg("c", "m", "t", `"12345678901"`), 413, "limit"},
		{"forbidden", msg("c", "m", "secret", `1`), 403, "forbidden"},
		{"bad utf-8", msg("c", "m", "t", "{\"a\":\"\xff\"}"), 400, "UTF-8"},
		{"bad topic", msg("c", "m", "a\nb", `1`), 400, "topic"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Deliver(context.Background(), nil, "http", tc.m)
			if status(err) != tc.status || !strings.Contains(fmt.Sprint(err), tc.want) {
				t.Fatalf("got %v (%d), want %d containing %q", err, status(err), tc.status, tc.want)
			}
		})
	}
	// A finished topic refuses for good.
	if _, err := h.Publish(context.Background(), &pubsub.Message{Topics: []string{"done"}, Final: true}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.Deliver(context.Background(), nil, "http", msg("c", "late", "done", `1`)); status(err) != http.StatusConflict {
			t.Fatalf("finished topic: %v, want 409", err)
		}
	}
}

// TestDedupePerSender: message ids are remembered per sender (the
// policy's Decision.Owner), so that one user cannot pre-empt another's
// message, nor learn from a "duplicate" answer that it was sent.
func TestDedupePerSender(t *testing.T) {
	h := newHub(t)
	s := service(h, nil)
	s.Access = access.DeciderFunc(func(r *http.Request, q access.Query) (access.Decision, error) {
		return access.Decision{Owner: r.Header.Get("X-Test-Sender")}, nil
	})
	from := func(sender string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/send", nil)
		r.Header.Set("X-Test-Sender", sender)
		return r
	}
	ctx := context.Background()
	a, err := s.Deliver(ctx, from("sub:mallory"), "http", msg("tab", "m1", "t", `"first"`))
	if err != nil || a.Duplicate {
		t.Fatalf("mallory: %+v %v", a, err)
	}
	b, err := s.Deliver(ctx, from("sub:alice"), "http", msg("tab", "m1", "t", `"second"`))
	if err != nil || b.Duplicate || b.ID == a.ID {
		t.Fatalf("alice's message with mallory's ids: %+v %v, want delivered as her own", b, err)
	}
	c, err := s.Deliver(ctx, from("sub:alice"), "http", msg("tab", "m1", "t", `"second"`))
	if err != nil || !c.Duplicate || c.ID != b.ID {
		t.Fatalf("alice's retry: %+v %v, want a duplicate of her first", c, err)
	}
	if hist := history(t, h, "t"); strings.Join(hist, ",") != "first,second" {
		t.Fatalf("history %q", hist)
	}
}

func TestDedupeWindowAndSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := memory.New(nil)
		defer b.Close()
		h := hub.New(b, nil)
		defer h.Close()
		s := &send.Service{Hub: h, Dedupe: send.NewDedupe(time.Minute, 3)}
		ctx := context.Background()
		deliver := func(id string) send.Ack {
			ack, err := s.Deliver(ctx, nil, "ws", msg("c", id, "t", `"`+id+`"`))
			if err != nil {
				t.Fatal(err)
			}
			return ack
		}
		if deliver("a").Duplicate {
			t.Fatal("first delivery marked duplicate")
		}
		time.Sleep(59 * time.Second)
		if !deliver("a").Duplicate {
			t.Fatal("retry within the window delivered again")
		}
		time.Sleep(2 * time.Second)
		if deliver("a").Duplicate {
			t.Fatal("retry after the window was not taken for a new message")
		}
		// Size: the oldest ids are forgotten first.
		for _, id := range []string{"b", "c", "d"} {
			deliver(id)
		}
		if s.Dedupe.Len() != 3 {
			t.Fatalf("len %d, want 3", s.Dedupe.Len())
		}
		if !deliver("d").Duplicate {
			t.Fatal("recent id forgotten")
		}
		if deliver("a").Duplicate {
			t.Fatal("an id beyond the size bound was remembered")
		}
		time.Sleep(2 * time.Minute)
		if s.Dedupe.Len() != 0 {
			t.Fatalf("len %d after the window, want 0", s.Dedupe.Len())
		}
	})
}
