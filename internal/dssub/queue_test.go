package dssub_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/dssub"
	"github.com/heraldpush/herald/internal/streams"
	"github.com/heraldpush/herald/internal/testkit"
)

// TestQueueOverflowRecovered: a write the full queue drops (to a new
// stream the pattern matches, not linked yet) is matched by the next
// full sweep, which then lists the broker's streams: the subscription
// links it and is woken.
func TestQueueOverflowRecovered(t *testing.T) {
	b := newBroker(t)
	var mgr *dssub.Manager
	svc, err := streams.New(b, streams.Options{OnWrite: func(topic string) { mgr.Notify(topic) }})
	if err != nil {
		t.Fatal(err)
	}
	mgr, err = dssub.Open(context.Background(), b, svc, dssub.Options{SweepInterval: 20 * time.Millisecond, MaxQueue: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	m := mux{http.NewServeMux()}
	m.ServeMux.Handle("/v1/stream/", &streams.Handler{Service: svc, Prefix: "/v1/stream/", MaxBody: 1 << 20})
	mgr.Mount(m, nil)
	ts := httptest.NewServer(m)
	defer ts.Close()
	n := &node{url: ts.URL, subs: mgr}

	n.do(t, "PUT", "/v1/stream/wake", `[]`, jsonCT)
	if r := n.do(t, "PUT", subs+"q", `{"type":"pull-wake","pattern":"jobs/*","wake_stream":"wake"}`, jsonCT); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	// Run is not running: the queue (one stream) keeps "wake", and the
	// two new streams' writes are dropped.
	for _, p := range []string{"jobs/1", "jobs/2"} {
		if r := n.do(t, "PUT", "/v1/stream/"+p, `{"job":1}`, jsonCT); r.status != 201 {
			t.Fatalf("create %s: %d %s", p, r.status, r.body)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { mgr.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	var got string
	if !testkit.Within(10*time.Second, func() bool {
		got = n.do(t, "GET", subs+"q", "").body
		return strings.Contains(got, `"path":"jobs/1"`) && strings.Contains(got, `"path":"jobs/2"`)
	}) {
		t.Fatalf("the dropped writes' streams are not linked: %s", got)
	}
	if r := n.do(t, "POST", subs+"q/claim", `{"worker":"w"}`, jsonCT); r.status != 200 {
		t.Fatalf("claim: %d %s", r.status, r.body)
	}
}
