package access_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/clientip"
	"github.com/heraldpush/herald/internal/cors"
)

const secret = "test-secret-of-at-least-32-bytes-0123456789"

// keyed returns a policy with one HS256 key for both roles; mutate may
// change its options.
func keyed(t *testing.T, mutate func(*access.Options)) *access.Policy {
	t.Helper()
	v, err := auth.NewVerifier(auth.VerifierOptions{Key: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	o := access.Options{Auth: &auth.Authorizer{Publisher: v, Subscriber: v}}
	if mutate != nil {
		mutate(&o)
	}
	return policy(o)
}

// dev returns a policy without keys (development mode).
func dev(t *testing.T, mutate func(*access.Options)) *access.Policy {
	t.Helper()
	var o access.Options
	if mutate != nil {
		mutate(&o)
	}
	return policy(o)
}

func policy(o access.Options) *access.Policy {
	o.Logger = slog.New(slog.DiscardHandler)
	if o.Proxies.Trusted == nil {
		o.Proxies = clientip.Resolver{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	}
	p := access.New(o)
	p.Reserve(access.Namespace{Name: "hub", Face: access.FaceMercure, Match: access.Prefix("/.well-known/mercure"), Read: access.ReachOwnFace})
	p.Reserve(access.Namespace{Name: "chat", Face: access.FaceChat, Match: access.Prefix("chat/"), Read: access.ReachAsTopic})
	p.Reserve(access.Namespace{Name: "demo", Face: access.FaceDemo, Match: access.Prefix("demo"), Read: access.ReachAnyone, Writable: true})
	p.SetFace(access.FaceDemo, access.FaceRules{OpenWrites: true})
	p.SetFace(access.FaceMercure, access.FaceRules{MercureTokens: true, TokenReadsPublic: true})
	return p
}

// within runs f with r as the policy's middleware hands it on: one
// Identity for the whole request.
func within(p *access.Policy, r *http.Request, f func(r *http.Request)) {
	p.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { f(r) })).ServeHTTP(httptest.NewRecorder(), r)
}

type claims struct {
	sub                string
	publish, subscribe []string
	exp, iat           time.Duration // from now; 0: none
}

func mint(t *testing.T, c claims) string {
	t.Helper()
	rc := jwt.RegisteredClaims{Subject: c.sub}
	if c.exp != 0 {
		rc.ExpiresAt = jwt.NewNumericDate(time.Now().Add(c.exp))
	}
	if c.iat != 0 {
		rc.IssuedAt = jwt.NewNumericDate(time.Now().Add(c.iat))
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, &auth.Claims{RegisteredClaims: rc, Mercure: &auth.MercureClaim{Publish: c.publish, Subscribe: c.subscribe}}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// req describes a request.
type req struct {
	remote string            // default 127.0.0.1:1
	host   string            // default localhost:8080
	hdr    map[string]string // headers; "Authorization" gets "Bearer " + value when it has no space
	cookie string            // heraldAuthorization
}

func (q req) build() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "127.0.0.1:1"
	if q.remote != "" {
		r.RemoteAddr = q.remote
	}
	r.Host = "localhost:8080"
	if q.host != "" {
		r.Host = q.host
	}
	for k, v := range q.hdr {
		if k == "Authorization" && !strings.Contains(v, " ") {
			v = "Bearer " + v
		}
		r.Header.Set(k, v)
	}
	if q.cookie != "" {
		r.AddCookie(&http.Cookie{Name: auth.CookieName, Value: q.cookie})
	}
	return r
}

// code returns the refusal's code, "ok" when allowed.
func code(err error) string {
	if err == nil {
		return "ok"
	}
	var e *access.Error
	if !errors.As(err, &e) {
		return "not an *access.Error: " + err.Error()
	}
	if e.Code == "" {
		return http.StatusText(e.Status)
	}
	return e.Code
}

func TestDecide(t *testing.T) {
	alice := claims{sub: "alice", subscribe: []string{"orders/*", "chat/*", "/.well-known/mercure", "/.well-known/**"}, publish: []string{"orders/*"}, exp: time.Hour}
	all := claims{sub: "root", subscribe: []string{"*"}, publish: []string{"*"}, exp: time.Hour}
	remote := "203.0.113.9:1"
	evil := map[string]string{"Origin": "https://evil.example"}
	tests := []struct {
		name string
		p    *access.Policy
		q    access.Query
		r    req
		want string
	}{
		// Development mode.
		{"dev: anyone subscribes", dev(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"a"}}, req{remote: remote}, "ok"},
		{"dev: loopback publishes", dev(t, nil), access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"a"}}, req{}, "ok"},
		{"dev: remote may not publish", dev(t, nil), access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"a"}}, req{remote: remote}, access.CodeLoopbackOnly},
		{"dev: forwarded client is remote", dev(t, nil), access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"a"}}, req{hdr: map[string]string{"X-Forwarded-For": "203.0.113.7"}}, access.CodeLoopbackOnly},
		{"dev: unparsable hop fails closed", dev(t, nil), access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"a"}}, req{hdr: map[string]string{"X-Forwarded-For": "unknown"}}, access.CodeLoopbackOnly},
		{"dev: untrusted local proxy", dev(t, func(o *access.Options) { o.Proxies = clientip.Resolver{Trusted: []netip.Prefix{}} }), access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"a"}}, req{hdr: map[string]string{"X-Forwarded-For": "203.0.113.7"}}, access.CodeLoopbackOnly},
		{"dev: foreign page may not publish through loopback", dev(t, nil), access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"a"}}, req{hdr: evil}, access.CodeOriginForbidden},
		{"dev: rebinding publish", dev(t, nil), access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"a"}}, req{host: "attacker.example:8080", hdr: map[string]string{"Origin": "http://attacker.example:8080"}}, access.CodeHostForbidden},
		{"dev: rebinding read", dev(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"a"}}, req{host: "attacker.example:8080"}, access.CodeHostForbidden},
		{"dev: IP host", dev(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"a"}}, req{host: "192.0.2.1:8080"}, "ok"},
		{"dev: listen host", dev(t, func(o *access.Options) { o.ListenAddr = "herald.internal:8080" }), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"a"}}, req{host: "herald.internal:8080"}, "ok"},
		{"dev: CORS origin's host", dev(t, func(o *access.Options) { o.CORS = cors.New([]string{"https://app.example"}) }), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"a"}}, req{host: "app.example"}, "ok"},
		{"dev: *.localhost", dev(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"a"}}, req{host: "app.localhost:8080"}, "ok"},
		{"dev: Mercure hub topic on /events", dev(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"/.well-known/mercure"}}, req{}, access.CodeTopicReserved},
		{"dev: Mercure hub topic on Mercure", dev(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceMercure, Topics: []string{"/.well-known/mercure"}}, req{}, "ok"},
		{"dev: publish to the hub's namespace", dev(t, nil), access.Query{Action: access.Publish, Face: access.FaceMercure, Topics: []string{"/.well-known/mercure/subscriptions/a/b"}}, req{}, access.CodeTopicReserved},
		{"dev: publish into a chat answer", dev(t, nil), access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"chat/x"}}, req{}, access.CodeTopicReserved},
		{"dev: send into the demo", dev(t, nil), access.Query{Action: access.Send, Face: access.FaceWS, Topics: []string{"demo"}}, req{}, access.CodeTopicReserved},
		{"dev: webhook-only message from afar", dev(t, nil), access.Query{Action: access.Send, Face: access.FaceSend}, req{remote: remote}, "ok"},
		{"webhook-only message, no token", keyed(t, nil), access.Query{Action: access.Send, Face: access.FaceWS}, req{remote: remote}, "ok"},
		{"webhook-only message, bad token", keyed(t, nil), access.Query{Action: access.Send, Face: access.FaceSend}, req{hdr: map[string]string{"Authorization": "x.y.z"}}, access.CodeTokenInvalid},
		{"webhook-only message from a foreign page", dev(t, nil), access.Query{Action: access.Send, Face: access.FaceSend}, req{remote: remote, hdr: evil}, access.CodeOriginForbidden},
		{"dev: demo open to remote writers", dev(t, nil), access.Query{Action: access.Publish, Face: access.FaceDemo, Topics: []string{"demo"}}, req{remote: remote}, "ok"},
		{"dev: demo write from a foreign page", dev(t, nil), access.Query{Action: access.Publish, Face: access.FaceDemo, Topics: []string{"demo"}}, req{remote: remote, hdr: evil}, access.CodeOriginForbidden},
		{"dev: demo write, cross-site GET", dev(t, nil), access.Query{Action: access.Publish, Face: access.FaceDemo, Topics: []string{"demo"}}, req{remote: remote, hdr: map[string]string{"Sec-Fetch-Site": "cross-site"}}, access.CodeOriginForbidden},
		{"dev: subscriptions API from loopback", dev(t, nil), access.Query{Action: access.ReadMetadata, Face: access.FaceMercure, Topics: []string{"/.well-known/mercure/subscriptions"}}, req{}, "ok"},
		{"dev: subscriptions API from afar", dev(t, nil), access.Query{Action: access.ReadMetadata, Face: access.FaceMercure, Topics: []string{"/.well-known/mercure/subscriptions"}}, req{remote: remote}, access.CodeLoopbackOnly},
		{"dev: subscriptions API forwarded", dev(t, nil), access.Query{Action: access.ReadMetadata, Face: access.FaceMercure, Topics: []string{"/.well-known/mercure/subscriptions"}}, req{hdr: map[string]string{"X-Forwarded-For": "203.0.113.7"}}, access.CodeLoopbackOnly},

		// Keys.
		{"no token", keyed(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"orders/1"}}, req{}, access.CodeTokenMissing},
		{"bad signature", keyed(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"orders/1"}}, req{hdr: map[string]string{"Authorization": mint(t, alice)[:40] + "x.y.z"}}, access.CodeTokenInvalid},
		{"expired", keyed(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"orders/1"}}, req{hdr: map[string]string{"Authorization": mint(t, claims{sub: "a", subscribe: []string{"*"}, exp: -time.Minute})}}, access.CodeTokenExpired},
		{"issued in the future", keyed(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"orders/1"}}, req{hdr: map[string]string{"Authorization": mint(t, claims{sub: "a", subscribe: []string{"*"}, iat: time.Hour})}}, access.CodeTokenInvalid},
		{"covered", keyed(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"orders/1"}}, req{hdr: map[string]string{"Authorization": mint(t, alice)}}, "ok"},
		{"not covered", keyed(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"news"}}, req{hdr: map[string]string{"Authorization": mint(t, alice)}}, access.CodeTopicForbidden},
		{"hub topic with a token covering it", keyed(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceWS, Topics: []string{"/.well-known/mercure"}}, req{hdr: map[string]string{"Authorization": mint(t, all)}}, access.CodeTopicReserved},
		{"Mercure: a valid token reads ordinary topics", keyed(t, func(o *access.Options) {}), access.Query{Action: access.Subscribe, Face: access.FaceMercure, Topics: []string{"news"}}, req{hdr: map[string]string{"Authorization": mint(t, alice)}}, "ok"},
		{"demo readable without a token", keyed(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"demo"}}, req{remote: remote}, "ok"},
		{"demo and another topic", keyed(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"demo", "news"}}, req{remote: remote}, access.CodeTokenMissing},
		{"key mode: foreign Host with a token", keyed(t, nil), access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"orders/1"}}, req{host: "push.example.com", hdr: map[string]string{"Authorization": mint(t, alice)}}, "ok"},
		{"explicit host list", keyed(t, func(o *access.Options) { o.AllowedHosts = []string{"push.example.com"} }), access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"orders/1"}}, req{host: "other.example.com", hdr: map[string]string{"Authorization": mint(t, alice)}}, access.CodeHostForbidden},
		{"explicit host list, subdomains", keyed(t, func(o *access.Options) { o.AllowedHosts = []string{"*.example.com"} }), access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"orders/1"}}, req{host: "push.example.com", hdr: map[string]string{"Authorization": mint(t, alice)}}, "ok"},
		{"any host", dev(t, func(o *access.Options) { o.AllowedHosts = []string{"*"} }), access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"a"}}, req{host: "attacker.example"}, "ok"},
		{"cookie publish from a foreign page", keyed(t, nil), access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"orders/1"}}, req{cookie: mint(t, alice), hdr: evil}, access.CodeOriginForbidden},
		{"bearer publish from a foreign page", keyed(t, nil), access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"orders/1"}}, req{hdr: map[string]string{"Authorization": mint(t, alice), "Origin": "https://evil.example"}}, "ok"},
		{"WebSocket from a foreign page", keyed(t, nil), access.Query{Action: access.Subscribe, Face: access.FaceWS, Topics: []string{"orders/1"}}, req{hdr: map[string]string{"Authorization": mint(t, alice), "Origin": "https://evil.example"}}, access.CodeOriginForbidden},
		{"WebSocket from a --ws-origin page", keyed(t, func(o *access.Options) { o.WSOrigins = []string{"*.example.com"} }), access.Query{Action: access.Subscribe, Face: access.FaceWS, Topics: []string{"orders/1"}}, req{hdr: map[string]string{"Authorization": mint(t, alice), "Origin": "https://app.example.com"}}, "ok"},
		{"chat start with a cookie from a foreign page", keyed(t, nil), access.Query{Action: access.Create, Face: access.FaceChat, Topics: []string{"chat/1"}}, req{cookie: mint(t, alice), hdr: evil}, access.CodeOriginForbidden},
		{"chat cancel by another subject", keyed(t, nil), access.Query{Action: access.Cancel, Face: access.FaceChat, Topics: []string{"chat/1"}, Owner: "sub:bob"}, req{hdr: map[string]string{"Authorization": mint(t, alice)}}, access.CodeNotOwner},
		{"chat cancel by its owner", keyed(t, nil), access.Query{Action: access.Cancel, Face: access.FaceChat, Topics: []string{"chat/1"}, Owner: "sub:alice"}, req{hdr: map[string]string{"Authorization": mint(t, alice)}}, "ok"},
		{"chat cancel, anonymous, another address", dev(t, nil), access.Query{Action: access.Cancel, Face: access.FaceChat, Topics: []string{"chat/1"}, Owner: "addr:198.51.100.1"}, req{remote: remote}, access.CodeNotOwner},
		{"subscriptions API needs a token", keyed(t, nil), access.Query{Action: access.ReadMetadata, Face: access.FaceMercure, Topics: []string{"/.well-known/mercure/subscriptions"}}, req{}, access.CodeTokenMissing},

		// The admin face.
		{"admin: loopback, no token configured", dev(t, nil), access.Query{Action: access.Administer, Face: access.FaceAdmin}, req{}, "ok"},
		{"admin: forwarded", dev(t, nil), access.Query{Action: access.Administer, Face: access.FaceAdmin}, req{hdr: map[string]string{"X-Forwarded-For": "203.0.113.7"}}, access.CodeLoopbackOnly},
		{"admin: cross-origin", dev(t, nil), access.Query{Action: access.Administer, Face: access.FaceAdmin}, req{hdr: evil}, access.CodeOriginForbidden},
		{"admin: cross-origin read", dev(t, nil), access.Query{Action: access.ReadMetadata, Face: access.FaceAdmin}, req{hdr: evil}, "ok"},
		{"admin: rebinding", keyed(t, nil), access.Query{Action: access.ReadMetadata, Face: access.FaceAdmin}, req{host: "attacker.example:8080"}, access.CodeHostForbidden},
		{"admin: token missing", dev(t, func(o *access.Options) { o.AdminToken = "s3cret" }), access.Query{Action: access.Administer, Face: access.FaceAdmin}, req{}, access.CodeAdminTokenMissing},
		{"admin: token wrong", dev(t, func(o *access.Options) { o.AdminToken = "s3cret" }), access.Query{Action: access.Administer, Face: access.FaceAdmin}, req{hdr: map[string]string{"Authorization": "nope"}}, access.CodeAdminTokenInvalid},
		{"admin: token from afar", dev(t, func(o *access.Options) { o.AdminToken = "s3cret" }), access.Query{Action: access.Administer, Face: access.FaceAdmin}, req{remote: remote, host: "push.example.com", hdr: map[string]string{"Authorization": "s3cret"}}, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.p.Decide(tt.r.build(), tt.q)
			if got := code(err); got != tt.want {
				t.Fatalf("Decide = %s (%v), want %s", got, err, tt.want)
			}
		})
	}
}

// TestPrivateFilter: a token's selectors never open another face's
// reserved topics, whatever they say; they open chat answers on every face.
func TestPrivateFilter(t *testing.T) {
	p := keyed(t, nil)
	tok := mint(t, claims{sub: "a", subscribe: []string{"*"}, exp: time.Hour})
	d, err := p.Decide(req{hdr: map[string]string{"Authorization": tok}}.build(), access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]bool{"orders": true, "chat/x": true, "/.well-known/mercure": false, "/.well-known/mercure/subscriptions/a/b": false} {
		if got := d.CanSeePrivate(topic); got != want {
			t.Errorf("CanSeePrivate(%q) = %v, want %v", topic, got, want)
		}
	}
	if d.Owner != "sub:a" || d.Client != "127.0.0.1" || d.Expires.IsZero() {
		t.Fatalf("decision %+v", d)
	}
}

// TestPublishRate: a request is charged once whatever the number of events
// it decides on; a WebSocket's messages are charged one by one; loopback
// publishers without a key are not charged.
func TestPublishRate(t *testing.T) {
	p := keyed(t, func(o *access.Options) { o.PublishRate, o.PublishBurst = 0.001, 2 })
	tok := mint(t, claims{sub: "a", publish: []string{"*"}, exp: time.Hour})
	within(p, req{remote: "203.0.113.9:1", hdr: map[string]string{"Authorization": tok}}.build(), func(r *http.Request) {
		for range 5 { // one request, a batch of five events
			if _, err := p.Decide(r, access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"a"}}); err != nil {
				t.Fatalf("batch: %v", err)
			}
		}
	})
	within(p, req{remote: "203.0.113.9:1", hdr: map[string]string{"Authorization": tok}}.build(), func(ws *http.Request) {
		if _, err := p.Decide(ws, access.Query{Action: access.Send, Face: access.FaceWS, Topics: []string{"a"}}); err != nil {
			t.Fatalf("first send: %v", err)
		}
		_, err := p.Decide(ws, access.Query{Action: access.Send, Face: access.FaceWS, Topics: []string{"a"}})
		var e *access.Error
		if !errors.As(err, &e) || e.Status != http.StatusTooManyRequests || e.RetryAfter < 1 || e.Code != access.CodeRateLimited {
			t.Fatalf("third publish of the subject: %v, want 429 rate_limited with Retry-After", err)
		}
	})
	// The demo's open writes are charged by address.
	d := dev(t, func(o *access.Options) { o.PublishRate, o.PublishBurst = 0.001, 1 })
	q := access.Query{Action: access.Publish, Face: access.FaceDemo, Topics: []string{"demo"}}
	if _, err := d.Decide(req{remote: "203.0.113.9:1"}.build(), q); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Decide(req{remote: "203.0.113.9:2"}.build(), q); code(err) != access.CodeRateLimited {
		t.Fatalf("second demo write from the address: %v", err)
	}
	for range 3 {
		if _, err := d.Decide(req{}.build(), access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"a"}}); err != nil {
			t.Fatalf("loopback publisher charged: %v", err)
		}
	}
}

// TestGrantVerifiedOnce: a request's token is verified once per role,
// however many decisions it takes (a batch, a WebSocket's messages).
func TestGrantVerifiedOnce(t *testing.T) {
	calls := 0
	c := auth.CompilerFunc(func(sel string) (auth.Matcher, error) { calls++; return auth.Patterns.Compile(sel) })
	v, err := auth.NewVerifier(auth.VerifierOptions{Key: []byte(secret), Compiler: c})
	if err != nil {
		t.Fatal(err)
	}
	p := policy(access.Options{Auth: &auth.Authorizer{Publisher: v, Subscriber: v}})
	r := req{hdr: map[string]string{"Authorization": mint(t, claims{sub: "a", publish: []string{"x"}, exp: time.Hour})}}.build()
	within(p, r, func(r *http.Request) {
		for range 10 {
			if _, err := p.Decide(r, access.Query{Action: access.Publish, Face: access.FacePublish, Topics: []string{"x"}}); err != nil {
				t.Error(err)
			}
		}
	})
	if calls != 1 {
		t.Fatalf("the token's selectors were compiled %d times: verified more than once", calls)
	}
}

func TestRouter(t *testing.T) {
	p := dev(t, func(o *access.Options) { o.MaxPerIP = 1 })
	rt := access.NewRouter(p)
	for _, bad := range []access.Route{{}, {Action: access.Subscribe}, {Face: access.FaceEvents}, {Action: access.Probe, Face: access.FaceOps, Topics: true}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Handle with entry %+v did not panic", bad)
				}
			}()
			rt.Handle("/x", bad, http.NotFoundHandler())
		}()
	}
	block, started := make(chan struct{}), make(chan struct{}, 1)
	rt.HandleFunc("/stream", access.Route{Action: access.Subscribe, Face: access.FaceEvents, Topics: true}, func(w http.ResponseWriter, r *http.Request) {
		p.Decide(r, access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: []string{"a"}})
		started <- struct{}{}
		<-block
	})
	rt.HandleFunc("/skips", access.Route{Action: access.Subscribe, Face: access.FaceEvents, Topics: true}, func(w http.ResponseWriter, r *http.Request) {})
	rt.HandleFunc("GET /healthz", access.Route{Action: access.Probe, Face: access.FaceOps}, func(w http.ResponseWriter, r *http.Request) {})
	rt.HandleFunc("POST /admin/purge", access.Route{Action: access.Administer, Face: access.FaceAdmin}, func(w http.ResponseWriter, r *http.Request) {})
	if got := len(rt.Routes()); got != 4 {
		t.Fatalf("%d routes listed, want 4", got)
	}
	h := p.Middleware(rt)
	serve := func(method, path string, q req) *httptest.ResponseRecorder {
		r := q.build()
		r.Method, r.URL.Path, r.RequestURI = method, path, path
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	// The router decides the routes whose handlers do not: the admin face.
	if w := serve("POST", "/admin/purge", req{remote: "203.0.113.9:1"}); w.Code != 403 || !strings.Contains(w.Body.String(), access.CodeLoopbackOnly) {
		t.Fatalf("remote purge: %d %s", w.Code, w.Body)
	}
	// A handler that answers without asking is counted.
	serve("GET", "/skips", req{})
	if p.Undecided() != 1 {
		t.Fatalf("Undecided = %d, want 1", p.Undecided())
	}
	// Per-address limit: while one request of an address is in progress,
	// the next is refused; probes are exempt. An unknown address (an
	// unparsable hop) is a key of its own: it does not skip the limit.
	for _, from := range []req{{remote: "203.0.113.9:1"}, {hdr: map[string]string{"X-Forwarded-For": "garbage"}}} {
		done := make(chan struct{})
		go func() { defer close(done); serve("GET", "/stream", from) }()
		<-started
		w := serve("GET", "/stream", from)
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), access.CodeTooManyConnections) {
			t.Fatalf("second concurrent request from %+v: %d %v %s", from, w.Code, w.Header(), w.Body)
		}
		if w := serve("GET", "/healthz", from); w.Code != 200 {
			t.Fatalf("probe at the limit: %d", w.Code)
		}
		block <- struct{}{}
		<-done
	}
	// A path not in its clean form is refused, not redirected (a 307 keeps
	// the method: DELETE /admin/x/.. would become DELETE /admin), except
	// for GET and HEAD, which the mux redirects as usual.
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/admin/purge/x/..", http.StatusBadRequest},
		{"DELETE", "/admin/purge/./", http.StatusBadRequest},
		{"PUT", "/admin//purge", http.StatusBadRequest},
		{"POST", "/admin/purge", http.StatusForbidden},         // clean: reaches the route (remote: refused)
		{"GET", "/healthz/x/..", http.StatusTemporaryRedirect}, // any redirect
	} {
		w := serve(c.method, c.path, req{remote: "203.0.113.9:1"})
		if got := w.Code; got != c.want && !(c.want == http.StatusTemporaryRedirect && got >= 300 && got < 400) {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, w.Code, w.Body, c.want)
		}
		if c.want == http.StatusBadRequest && !strings.Contains(w.Body.String(), access.CodeBadPath) {
			t.Errorf("%s %s: body %s, want code %s", c.method, c.path, w.Body, access.CodeBadPath)
		}
	}
}

func TestWrite(t *testing.T) {
	var reasons []string
	p := access.New(access.Options{Rejected: func(r string) { reasons = append(reasons, r) }})
	for _, tc := range []struct {
		err    error
		status int
		code   string
		retry  string
		reason string
	}{
		{&access.Error{Status: 429, Code: access.CodeRateLimited, Msg: "slow down", RetryAfter: 3, Reason: "publish_rate"}, 429, access.CodeRateLimited, "3", "publish_rate"},
		{access.BadRequest("bad %s", "thing"), 400, "", "", "bad_request"},
		{&http.MaxBytesError{Limit: 10}, 413, access.CodeTooLarge, "", "too_large"},
		{auth.TokenRequired(), 401, access.CodeTokenMissing, "", "unauthorized"},
		{errors.New("secret internals"), 500, "", "", ""},
		{access.Errorf(404, "", "no such thing"), 404, "", "", ""},
	} {
		reasons = nil
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		p.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { access.Write(w, r, tc.err) })).ServeHTTP(w, r)
		var body struct{ Error, Code string }
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == "" {
			t.Fatalf("%v: body %q", tc.err, w.Body)
		}
		if w.Code != tc.status || body.Code != tc.code || w.Header().Get("Retry-After") != tc.retry || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%v: %d %+v %v", tc.err, w.Code, body, w.Header())
		}
		if strings.Contains(body.Error, "secret internals") {
			t.Errorf("an unexpected error's text reached the client: %q", body.Error)
		}
		if got := strings.Join(reasons, ","); got != tc.reason {
			t.Errorf("%v: counted %q, want %q", tc.err, got, tc.reason)
		}
	}
}

// TestReadBody: a Content-Length over the limit is refused before a byte
// is read.
func TestReadBody(t *testing.T) {
	r := httptest.NewRequest("POST", "/", nil)
	r.ContentLength = 1 << 20
	r.Body = failingBody{t}
	_, err := access.ReadBody(httptest.NewRecorder(), r, 1000)
	var e *access.Error
	if !errors.As(err, &e) || e.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("ReadBody = %v, want 413", err)
	}
	r = httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", 2000)))
	r.ContentLength = -1 // chunked: the length is learnt by reading
	if _, err := access.ReadBody(httptest.NewRecorder(), r, 1000); code(err) != access.CodeTooLarge {
		t.Fatalf("chunked body over the limit: %v", err)
	}
	r = httptest.NewRequest("POST", "/", strings.NewReader("hello"))
	if b, err := access.ReadBody(httptest.NewRecorder(), r, 1000); err != nil || string(b) != "hello" {
		t.Fatalf("ReadBody = %q, %v", b, err)
	}
}

type failingBody struct{ t *testing.T }

func (b failingBody) Read([]byte) (int, error) {
	b.t.Error("the body was read")
	return 0, errors.New("read")
}
func (failingBody) Close() error { return nil }

func TestReadForm(t *testing.T) {
	r := httptest.NewRequest("POST", "/x?message=q&other=1", strings.NewReader("message=b"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	f, err := access.ReadForm(httptest.NewRecorder(), r, 100)
	if err != nil || strings.Join(f["message"], ",") != "b,q" || f.Get("other") != "1" {
		t.Fatalf("ReadForm = %v, %v", f, err)
	}
	r = httptest.NewRequest("GET", "/x?message=q", strings.NewReader("message=b"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if f, err := access.ReadForm(httptest.NewRecorder(), r, 100); err != nil || strings.Join(f["message"], ",") != "q" {
		t.Fatalf("a GET's body was read: %v, %v", f, err)
	}
	r = httptest.NewRequest("POST", "/x", strings.NewReader("message=%zz"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, err := access.ReadForm(httptest.NewRecorder(), r, 100); code(err) != "Bad Request" {
		t.Fatalf("malformed form: %v", err)
	}
}
