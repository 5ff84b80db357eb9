package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/admin"
	"github.com/heraldpush/herald/internal/clientip"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

func setup(t *testing.T, token string) (*hub.Hub, http.Handler) {
	t.Helper()
	b := memory.New(nil)
	h := hub.New(b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; b.Close() })
	p := access.New(access.Options{AdminToken: token, Proxies: clientip.Resolver{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}})
	rt := access.NewRouter(p)
	(&admin.API{Hub: h}).Register(rt)
	return h, p.Middleware(rt)
}

func do(h http.Handler, method, target, remote string, hdr map[string]string, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Host = "localhost:8080"
	req.RemoteAddr = remote
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestGuard(t *testing.T) {
	const loop, remote = "127.0.0.1:5000", "203.0.113.9:5000"
	tests := []struct {
		name, token, remote string
		hdr                 map[string]string
		query               string
		want                int
	}{
		{"dev mode loopback", "", loop, nil, "", 200},
		{"dev mode ipv6 loopback", "", "[::1]:5000", nil, "", 200},
		{"dev mode remote", "", remote, nil, "", 403},
		{"token missing", "s3cret", loop, nil, "", 401},
		{"token wrong", "s3cret", remote, map[string]string{"Authorization": "Bearer nope"}, "", 403},
		{"token right", "s3cret", remote, map[string]string{"Authorization": "Bearer s3cret"}, "", 200},
		{"token in query", "s3cret", remote, nil, "?token=s3cret", 200},
		{"basic scheme", "s3cret", remote, map[string]string{"Authorization": "Basic czNjcmV0"}, "", 401},
		// Issue 15: a client that a proxy forwarded is remote, whatever
		// the proxy's own address (trusted or not, parsable or not).
		{"dev mode, forwarded by a trusted local proxy", "", loop, map[string]string{"X-Forwarded-For": "203.0.113.7"}, "", 403},
		{"dev mode, forwarded loopback hop", "", loop, map[string]string{"X-Forwarded-For": "127.0.0.1"}, "", 403},
		{"dev mode, unparsable hop", "", loop, map[string]string{"X-Forwarded-For": "203.0.113.7:5555, unknown"}, "", 403},
		{"dev mode, Forwarded header", "", loop, map[string]string{"Forwarded": "for=203.0.113.7"}, "", 403},
		{"dev mode, foreign Host (DNS rebinding)", "", loop, map[string]string{"Host": "attacker.example:8080"}, "", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, h := setup(t, tt.token)
			rec := do(h, "GET", "/admin/topics"+tt.query, tt.remote, tt.hdr, "")
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if rec.Code != 200 {
				var e struct{ Error string }
				if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
					t.Fatalf("error body is not JSON {error}: %s", rec.Body)
				}
			}
		})
	}
}

// TestStateChangesNeedSameOrigin: without --admin-token, a page of another
// origin cannot make a local browser purge history or disconnect everyone
// (issue 15: both answered 200); a tool that sends no Origin, and the
// server's own pages, can.
func TestStateChangesNeedSameOrigin(t *testing.T) {
	_, api := setup(t, "")
	const loop = "127.0.0.1:1"
	for _, tc := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"foreign origin purges", map[string]string{"Origin": "https://evil.example"}, 403},
		{"null origin", map[string]string{"Origin": "null"}, 403},
		{"cross-site fetch without Origin", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"another port of the same host", map[string]string{"Origin": "http://localhost:3000"}, 403},
		{"own page", map[string]string{"Origin": "http://localhost:8080", "Sec-Fetch-Site": "same-origin"}, 200},
		{"curl", nil, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/admin/purge", "/admin/disconnect"} {
				body := "topic=a"
				if path == "/admin/disconnect" {
					body = "all=true"
				}
				rec := do(api, "POST", path, loop, tc.hdr, body)
				if rec.Code != tc.want {
					t.Fatalf("POST %s: %d %s, want %d", path, rec.Code, rec.Body, tc.want)
				}
				if tc.want == 403 && !strings.Contains(rec.Body.String(), access.CodeOriginForbidden) {
					t.Fatalf("POST %s: %s, want code %s", path, rec.Body, access.CodeOriginForbidden)
				}
			}
		})
	}
}

func TestTopicsDisconnectPurge(t *testing.T) {
	h, api := setup(t, "")
	ctx := context.Background()
	const loop = "127.0.0.1:1"
	for i := 0; i < 3; i++ {
		if _, err := h.Publish(ctx, &pubsub.Message{Topics: []string{"a"}, Data: "x", Retain: i == 2}); err != nil {
			t.Fatal(err)
		}
	}
	subs := make([]*hub.Subscription, 0, 3)
	for _, topics := range [][]string{{"a"}, {"a", "b"}, {"b"}} {
		s, err := h.Subscribe(ctx, hub.Request{Topics: topics})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		subs = append(subs, s)
	}

	rec := do(api, "GET", "/admin/topics", loop, nil, "")
	var got struct{ Topics []admin.Topic }
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err, rec.Body)
	}
	want := map[string]admin.Topic{
		"a": {Topic: "a", Subscribers: 2, History: 3, Retained: true},
		"b": {Topic: "b", Subscribers: 2, History: -1},
	}
	if len(got.Topics) != 2 {
		t.Fatalf("topics = %+v", got.Topics)
	}
	for _, tp := range got.Topics {
		if tp != want[tp.Topic] {
			t.Errorf("topic %s = %+v, want %+v", tp.Topic, tp, want[tp.Topic])
		}
	}

	for _, tc := range []struct{ body, wantErr string }{
		{"", "all=true"},
		{"topic=a&all=true", "not both"},
		{"topic=%01", "control character"},
	} {
		rec := do(api, "POST", "/admin/disconnect", loop, nil, tc.body)
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), tc.wantErr) {
			t.Errorf("disconnect %q: %d %s", tc.body, rec.Code, rec.Body)
		}
	}
	rec = do(api, "POST", "/admin/disconnect", loop, nil, "topic=b")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"disconnected":2`) {
		t.Fatalf("disconnect b: %d %s", rec.Code, rec.Body)
	}
	for i, s := range subs {
		_, open := s.Pop(nil)
		if wantOpen := i == 0; open != wantOpen {
			t.Errorf("subscription %d open = %v, want %v", i, open, wantOpen)
		}
	}

	rec = do(api, "POST", "/admin/purge", loop, nil, url.Values{"topic": {"a"}}.Encode())
	if rec.Code != 200 {
		t.Fatalf("purge: %d %s", rec.Code, rec.Body)
	}
	snap, err := h.Broker().Read(ctx, pubsub.Query{Topics: []string{"a"}, After: &pubsub.Position{Epoch: h.Broker().Epoch()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Events) != 0 || !snap.Truncated {
		t.Fatalf("after purge: %d events, truncated=%v; want none and truncated", len(snap.Events), snap.Truncated)
	}
	rec = do(api, "POST", "/admin/purge", loop, nil, "")
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 400 || !strings.Contains(string(body), "topic") {
		t.Fatalf("purge without topic: %d %s", rec.Code, body)
	}
}
