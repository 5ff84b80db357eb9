package dssub_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/heraldpush/herald/internal/dssub"
	"github.com/heraldpush/herald/internal/streams"
)

// BenchmarkAppend measures what subscriptions cost an append on the node
// that serves it (memory broker): no write hook at all, the hook with no
// subscription, and with 10 subscriptions whose pattern does not match
// the stream or does (each holding an unclaimed wake, so an append reads
// their state and writes nothing). The matching runs beside the appends,
// in the manager's goroutine, and its CPU counts.
func BenchmarkAppend(b *testing.B) {
	for _, c := range []struct {
		name    string
		hook    bool
		subs    int
		pattern string
	}{
		{"hook-off", false, 0, ""},
		{"subs-0", true, 0, ""},
		{"subs-10-unmatched", true, 10, "other/*"},
		{"subs-10-matched", true, 10, "bench/*"},
	} {
		b.Run(c.name, func(b *testing.B) {
			br := newBroker(b)
			var mgr *dssub.Manager
			o := streams.Options{}
			if c.hook {
				o.OnWrite = func(topic string) { mgr.Notify(topic) }
			}
			svc, err := streams.New(br, o)
			if err != nil {
				b.Fatal(err)
			}
			mgr, err = dssub.Open(context.Background(), br, svc, dssub.Options{})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { mgr.Run(ctx); close(done) }()
			defer func() { cancel(); <-done; mgr.Close() }()
			m := mux{http.NewServeMux()}
			m.ServeMux.Handle("/v1/stream/", &streams.Handler{Service: svc, Prefix: "/v1/stream/"})
			mgr.Mount(m, nil)
			ts := httptest.NewServer(m)
			defer ts.Close()
			n := &node{url: ts.URL}
			n.do(b, "PUT", "/v1/stream/bench/s", `[]`, jsonCT)
			n.do(b, "PUT", "/v1/stream/wake/w", `[]`, jsonCT)
			for i := range c.subs {
				body := fmt.Sprintf(`{"type":"pull-wake","pattern":%q,"wake_stream":"wake/w"}`, c.pattern)
				if r := n.do(b, "PUT", fmt.Sprintf("%s%d", subs, i), body, jsonCT); r.status != 201 {
					b.Fatalf("subscription: %d %s", r.status, r.body)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := svc.AppendJSON(context.Background(), "ds/bench/s", `{"n":1}`); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
