package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/api"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

// BenchmarkPublish measures the handler of POST /publish without the
// network: body parsing, validation, the broker's append and the hub's
// fan-out to 10 subscribers, and the JSON answer. Reported: events/s and
// allocations per request.
func BenchmarkPublish(b *testing.B) {
	data := strings.Repeat("x", 100)
	batch := make([]map[string]string, 100)
	for i := range batch {
		batch[i] = map[string]string{"topic": "t", "data": data}
	}
	batchBody, _ := json.Marshal(batch)
	for _, tc := range []struct {
		name, ctype, body string
		events            int
	}{
		{"form", "application/x-www-form-urlencoded", url.Values{"topic": {"t"}, "data": {data}}.Encode(), 1},
		{"json", "application/json", fmt.Sprintf(`{"topic":"t","data":%q}`, data), 1},
		{"batch=100", "application/json", string(batchBody), 100},
	} {
		b.Run(tc.name, func(b *testing.B) {
			mb := memory.New(&memory.Options{Retention: pubsub.Retention{MaxEvents: 1000}})
			defer mb.Close()
			h := hub.New(mb, nil)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- h.Run(ctx) }()
			defer func() { cancel(); <-done }()
			subs := make([]*hub.Subscription, 10)
			for i := range subs {
				s, err := h.Subscribe(context.Background(), hub.Request{Topics: []string{"t"}})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				subs[i] = s
			}
			p := &api.Publisher{Hub: h, MaxDataBytes: 1 << 20, MaxBatch: 1000}
			body := strings.NewReader(tc.body)
			req := httptest.NewRequest(http.MethodPost, "/publish", body)
			req.Header.Set("Content-Type", tc.ctype)
			var buf []*hub.Event
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				body.Reset(tc.body)
				req.Body = http.NoBody
				r := req.Clone(context.Background())
				r.Body = readCloser{body}
				w := httptest.NewRecorder()
				p.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
				if i%64 == 0 { // drain the queues as transports would
					for _, s := range subs {
						buf, _ = s.Pop(buf[:0])
					}
				}
			}
			b.ReportMetric(float64(b.N*tc.events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
