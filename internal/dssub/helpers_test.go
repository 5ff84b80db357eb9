package dssub_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/dssub"
	"github.com/heraldpush/herald/internal/streams"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

// mux registers routes on an http.ServeMux, ignoring their policy entry
// (the handler's Decider is nil: everything is allowed).
type mux struct{ *http.ServeMux }

func (m mux) Handle(p string, _ access.Route, h http.Handler)         { m.ServeMux.Handle(p, h) }
func (m mux) HandleFunc(p string, _ access.Route, h http.HandlerFunc) { m.ServeMux.Handle(p, h) }

// node is one Herald node's streams and subscriptions over real HTTP, on
// a broker nodes may share.
type node struct {
	url  string // the server's root
	subs *dssub.Manager
	stop func()
}

// newBroker returns a memory broker with no history limits.
func newBroker(t testing.TB) pubsub.Broker {
	b := memory.New(&memory.Options{Retention: pubsub.Retention{}})
	t.Cleanup(func() { b.Close() })
	return b
}

// newNode serves streams and subscriptions from b, with webhooks allowed
// to loopback and a fast sweep.
func newNode(t testing.TB, b pubsub.Broker, opts ...func(*dssub.Options)) *node {
	t.Helper()
	var subs *dssub.Manager
	svc, err := streams.New(b, streams.Options{OnWrite: func(topic string) { subs.Notify(topic) }})
	if err != nil {
		t.Fatal(err)
	}
	o := dssub.Options{URLPolicy: dssub.URLPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		SweepInterval: 20 * time.Millisecond, Timeout: 5 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	subs, err = dssub.Open(context.Background(), b, svc, o)
	if err != nil {
		t.Fatal(err)
	}
	m := mux{http.NewServeMux()}
	m.ServeMux.Handle("/v1/stream/", &streams.Handler{Service: svc, Prefix: "/v1/stream/", MaxBody: 1 << 20})
	subs.Mount(m, nil)
	ts := httptest.NewServer(m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { subs.Run(ctx); close(done) }()
	var once sync.Once
	n := &node{url: ts.URL, subs: subs}
	n.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			subs.Close()
			ts.CloseClientConnections()
			ts.Close()
		})
	}
	t.Cleanup(n.stop)
	return n
}

// reply is an HTTP answer.
type reply struct {
	status int
	body   string
}

// json decodes the answer's body.
func (r reply) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("answer %d %q is not a JSON object: %v", r.status, r.body, err)
	}
	return v
}

// code returns the error code of an error answer.
func (r reply) code(t testing.TB) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	c, _ := e["code"].(string)
	if c == "" || e["message"] == "" {
		t.Fatalf("answer %d %q has no error code and message", r.status, r.body)
	}
	return c
}

// do sends a request to path (under the node's root) with headers given
// as "Name: value" strings.
func (n *node) do(t testing.TB, method, path, body string, headers ...string) reply {
	t.Helper()
	return call(t, method, n.url+path, body, headers...)
}

func call(t testing.TB, method, url, body string, headers ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
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
	return reply{resp.StatusCode, string(b)}
}

// delivery is one webhook request a receiver got.
type delivery struct {
	raw       []byte
	signature string
	body      struct {
		SubscriptionID string `json:"subscription_id"`
		WakeID         string `json:"wake_id"`
		Generation     int64  `json:"generation"`
		CallbackURL    string `json:"callback_url"`
		CallbackToken  string `json:"callback_token"`
		Streams        []struct {
			Path       string `json:"path"`
			TailOffset string `json:"tail_offset"`
			HasPending bool   `json:"has_pending"`
		} `json:"streams"`
	}
}

// receiver is a webhook receiver on loopback that answers with answer.
type receiver struct {
	url string
	got chan delivery
}

func newReceiver(t testing.TB, answer string) *receiver {
	t.Helper()
	r := &receiver{got: make(chan delivery, 64)}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		d := delivery{raw: b, signature: req.Header.Get("Webhook-Signature")}
		if err := json.Unmarshal(b, &d.body); err != nil {
			t.Errorf("webhook body %q: %v", b, err)
		}
		r.got <- d
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	}))
	t.Cleanup(ts.Close)
	r.url = ts.URL + "/hook"
	return r
}

// next waits for the next delivery.
func (r *receiver) next(t testing.TB, within time.Duration) delivery {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case d := <-r.got:
		return d
	case <-timer.C:
		t.Fatalf("no webhook delivery within %s", within)
		return delivery{}
	}
}

const jsonCT = "Content-Type: application/json"
