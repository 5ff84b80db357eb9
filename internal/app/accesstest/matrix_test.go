package accesstest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/sse"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	secret     = "matrix-secret-of-at-least-32-bytes-0123456"
	adminToken = "matrix-admin-token"
	form       = "application/x-www-form-urlencoded"
)

// The identities a request is made with, in the order of the tables below.
var identities = []string{"none", "bad-signature", "expired", "iat-future", "other-topic", "topic", "admin", "forwarded", "cross-origin", "foreign-host", "access-token"}

// env is one server and what the identities need.
type env struct {
	name  string // "keys" or "dev"
	srv   *apptest.Server
	port  string
	toks  map[string]string
	chat  string // a finished chat generation, started by "topic"
	epoch string
}

func sign(t *testing.T, key string, c *auth.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signAccessToken signs an access token (header typ at+jwt) for sub whose
// authorization_details let it publish and subscribe to every topic, as
// the Mercure documents write one.
func signAccessToken(t *testing.T, key, sub string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub,
		"exp": time.Now().Add(time.Hour).Unix(),
		"authorization_details": []any{map[string]any{
			"type":    "https://mercure.rocks/authorization-detail",
			"actions": []string{"publish", "subscribe"},
			"topics":  []any{map[string]string{"match": "*"}},
		}},
	})
	tok.Header["typ"] = "at+jwt"
	s, err := tok.SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(sub string, topics []string, mutate func(*jwt.RegisteredClaims)) *auth.Claims {
	c := &auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Mercure: &auth.MercureClaim{Publish: topics, Subscribe: topics}}
	if mutate != nil {
		mutate(&c.RegisteredClaims)
	}
	return c
}

func newEnv(t *testing.T, name string) *env {
	t.Helper()
	srv := apptest.Start(t, func(c *config.Server) {
		c.HTTP.TrustedProxies = config.Strings{"127.0.0.1/32"}
		c.HTTP.MaxConnectionsPerSubject = 0
		c.Mercure.Subscriptions = true
		c.Chat.LLMDemoDelay = time.Millisecond
		c.Chat.MaxConcurrentPerClient = 1000
		c.Core.KeepAlive = time.Hour
		if name == "keys" {
			c.Auth.JWT.Key = secret
			c.Ops.AdminToken = adminToken
			c.Ops.Dashboard = true
		}
	})
	e := &env{name: name, srv: srv, port: srv.URL[strings.LastIndex(srv.URL, ":")+1:], epoch: srv.App.Hub().Broker().Epoch()}
	e.toks = map[string]string{
		"bad-signature": sign(t, "another-secret-of-at-least-32-bytes-012345", claims("owner", []string{"*"}, nil)),
		"expired":       sign(t, secret, claims("owner", []string{"*"}, func(c *jwt.RegisteredClaims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute)) })),
		"iat-future":    sign(t, secret, claims("owner", []string{"*"}, func(c *jwt.RegisteredClaims) { c.IssuedAt = jwt.NewNumericDate(time.Now().Add(time.Hour)) })),
		"other-topic":   sign(t, secret, claims("other", []string{"other"}, nil)),
		"topic":         sign(t, secret, claims("owner", []string{"*"}, nil)),
		"admin":         adminToken,
		// The current Mercure protocol's shape: an access token (typ
		// at+jwt) whose authorization_details grant what "topic"'s
		// mercure claim does.
		"access-token": signAccessToken(t, secret, "owner"),
	}
	return e
}

// apply makes r a request of identity id.
func (e *env) apply(id string, h http.Header) (host string) {
	switch id {
	case "none":
	case "forwarded":
		h.Set("Authorization", "Bearer "+e.toks["topic"])
		h.Set("X-Forwarded-For", "203.0.113.7")
	case "cross-origin":
		h.Set("Cookie", auth.CookieName+"="+e.toks["topic"])
		h.Set("Origin", "https://evil.example")
		h.Set("Sec-Fetch-Site", "cross-site")
	case "foreign-host":
		h.Set("Authorization", "Bearer "+e.toks["topic"])
		h.Set("Origin", "http://attacker.example:"+e.port)
		return "attacker.example:" + e.port
	default:
		h.Set("Authorization", "Bearer "+e.toks[id])
	}
	return ""
}

// publisher headers: a token that may publish anywhere (keys), or none
// (development mode, from loopback).
func (e *env) publish(t *testing.T, path, ctype, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	if e.name == "keys" {
		req.Header.Set("Authorization", "Bearer "+e.toks["topic"])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s %s: %d %s", path, body, resp.StatusCode, b)
	}
}

func (e *env) event(t *testing.T, topic, data string, private, retain bool) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"topic": topic, "data": data, "private": private, "retain": retain})
	e.publish(t, "/publish", "application/json", string(b))
}

// The topic classes: the topic a subscription follows in each class.
var classes = []string{"public", "private", "reserved", "chat", "demo"}

func (e *env) topics(class string) []string {
	switch class {
	case "public":
		return []string{"pub"}
	case "private":
		return []string{"priv"}
	case "reserved":
		// The hub's own topic, and a marker topic to end the read on.
		return []string{"/.well-known/mercure", "marker"}
	case "chat":
		return []string{"chat/" + e.chat}
	}
	return []string{"demo"}
}

// before publishes the events subscribers find in history and retained,
// and creates the Durable Stream the stream routes read and append to.
func (e *env) before(t *testing.T) {
	put, _ := http.NewRequest("PUT", e.srv.URL+"/v1/stream/matrix", strings.NewReader("first"))
	put.Header.Set("Content-Type", "text/plain")
	if e.name == "keys" {
		put.Header.Set("Authorization", "Bearer "+e.toks["topic"])
	}
	if resp, err := http.DefaultClient.Do(put); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT /v1/stream/matrix: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	sub, _ := http.NewRequest("PUT", e.srv.URL+"/v1/stream/__ds/subscriptions/matrixsub", strings.NewReader(`{"type":"pull-wake","streams":["matrix-idle"],"wake_stream":"matrix-wake"}`))
	sub.Header.Set("Content-Type", "application/json")
	if e.name == "keys" {
		sub.Header.Set("Authorization", "Bearer "+e.toks["topic"])
	}
	if resp, err := http.DefaultClient.Do(sub); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT /v1/stream/__ds/subscriptions/matrixsub: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	e.event(t, "pub", "pub-r", false, true)
	e.event(t, "pub", "pub-h", false, false)
	e.event(t, "priv", "priv-r", true, true)
	e.event(t, "priv", "priv-h", true, false)
	e.publish(t, "/sse/broadcast", form, "message=demo-h")
	e.publish(t, "/.well-known/mercure", form, "topic=mt&data=mercure-private-h&private=on")
	e.publish(t, "/.well-known/mercure", form, "topic=mt&data=mercure-public-h")
	// A chat answer, started by the "topic" identity, read to its end.
	h := http.Header{"Content-Type": {"application/json"}}
	e.apply("topic", h)
	req, _ := http.NewRequest("POST", e.srv.URL+"/chat", strings.NewReader(`{"messages":[{"role":"user","content":"hello"}]}`))
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != 201 || created.ID == "" {
		t.Fatalf("POST /chat: %d", resp.StatusCode)
	}
	e.chat = created.ID
	req, _ = http.NewRequest("GET", e.srv.URL+"/chat/stream/"+e.chat, nil)
	e.apply("topic", req.Header)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// live publishes the events subscribers get live, then the end markers.
func (e *env) live(t *testing.T) {
	e.event(t, "pub", "pub-l", false, false)
	e.event(t, "priv", "priv-l", true, false)
	e.publish(t, "/sse/broadcast", form, "message=demo-l")
	e.publish(t, "/.well-known/mercure", form, "topic=mt&data=mercure-private-l&private=on")
	e.publish(t, "/.well-known/mercure", form, "topic=mt&data=mercure-public-l")
	e.event(t, "pub", "end", false, false)
	e.event(t, "priv", "end", false, false)
	e.event(t, "marker", "end", false, false)
	e.publish(t, "/sse/broadcast", form, "message=end")
}

// subscription outcomes, per class and identity: "events ws mercure",
// each "ok" or the refusal's status. They are written out, not derived
// from the policy.
var subscriptions = map[string]map[string]map[string]string{
	"keys": {
		"public":   {"none": "401 401 401", "bad-signature": "401 401 401", "expired": "401 401 401", "iat-future": "401 401 401", "other-topic": "403 403 ok", "topic": "ok ok ok", "admin": "401 401 401", "forwarded": "ok ok ok", "cross-origin": "ok 403 ok", "foreign-host": "ok ok ok", "access-token": "ok ok ok"},
		"private":  {"none": "401 401 401", "bad-signature": "401 401 401", "expired": "401 401 401", "iat-future": "401 401 401", "other-topic": "403 403 ok", "topic": "ok ok ok", "admin": "401 401 401", "forwarded": "ok ok ok", "cross-origin": "ok 403 ok", "foreign-host": "ok ok ok", "access-token": "ok ok ok"},
		"reserved": {"none": "403 403 401", "bad-signature": "403 403 401", "expired": "403 403 401", "iat-future": "403 403 401", "other-topic": "403 403 ok", "topic": "403 403 ok", "admin": "403 403 401", "forwarded": "403 403 ok", "cross-origin": "403 403 ok", "foreign-host": "403 403 ok", "access-token": "403 403 ok"},
		"chat":     {"none": "401 401 401", "bad-signature": "401 401 401", "expired": "401 401 401", "iat-future": "401 401 401", "other-topic": "403 403 403", "topic": "ok ok ok", "admin": "401 401 401", "forwarded": "ok ok ok", "cross-origin": "ok 403 ok", "foreign-host": "ok ok ok", "access-token": "ok ok ok"},
		"demo":     {"none": "ok ok ok", "bad-signature": "401 401 401", "expired": "401 401 401", "iat-future": "401 401 401", "other-topic": "ok ok ok", "topic": "ok ok ok", "admin": "401 401 401", "forwarded": "ok ok ok", "cross-origin": "ok 403 ok", "foreign-host": "ok ok ok", "access-token": "ok ok ok"},
	},
	"dev": {
		"public":   {"none": "ok ok ok", "bad-signature": "ok ok ok", "expired": "ok ok ok", "iat-future": "ok ok ok", "other-topic": "ok ok ok", "topic": "ok ok ok", "admin": "ok ok ok", "forwarded": "ok ok ok", "cross-origin": "ok 403 ok", "foreign-host": "403 403 403", "access-token": "ok ok ok"},
		"private":  {"none": "ok ok ok", "bad-signature": "ok ok ok", "expired": "ok ok ok", "iat-future": "ok ok ok", "other-topic": "ok ok ok", "topic": "ok ok ok", "admin": "ok ok ok", "forwarded": "ok ok ok", "cross-origin": "ok 403 ok", "foreign-host": "403 403 403", "access-token": "ok ok ok"},
		"reserved": {"none": "403 403 ok", "bad-signature": "403 403 ok", "expired": "403 403 ok", "iat-future": "403 403 ok", "other-topic": "403 403 ok", "topic": "403 403 ok", "admin": "403 403 ok", "forwarded": "403 403 ok", "cross-origin": "403 403 ok", "foreign-host": "403 403 403", "access-token": "403 403 ok"},
		"chat":     {"none": "ok ok ok", "bad-signature": "ok ok ok", "expired": "ok ok ok", "iat-future": "ok ok ok", "other-topic": "ok ok ok", "topic": "ok ok ok", "admin": "ok ok ok", "forwarded": "ok ok ok", "cross-origin": "ok 403 ok", "foreign-host": "403 403 403", "access-token": "ok ok ok"},
		"demo":     {"none": "ok ok ok", "bad-signature": "ok ok ok", "expired": "ok ok ok", "iat-future": "ok ok ok", "other-topic": "ok ok ok", "topic": "ok ok ok", "admin": "ok ok ok", "forwarded": "ok ok ok", "cross-origin": "ok 403 ok", "foreign-host": "403 403 403", "access-token": "ok ok ok"},
	},
}

// seesPrivate: the identities whose token covers the private topic (with
// keys; without keys private events reach no one).
var seesPrivate = map[string]bool{"topic": true, "forwarded": true, "cross-origin": true, "foreign-host": true, "access-token": true}

var transports = []string{"events", "ws", "mercure"}

// expected returns the data a subscriber gets before "end", for a fresh
// subscription (retained state, then live) or a resumed one (history from
// the start, then live).
func expected(class string, resume, private bool) string {
	switch class {
	case "public":
		if resume {
			return "pub-r,pub-h,pub-l"
		}
		return "pub-r,pub-l"
	case "private":
		switch {
		case !private:
			return ""
		case resume:
			return "priv-r,priv-h,priv-l"
		}
		return "priv-r,priv-l"
	case "demo":
		if resume {
			return "demo-h,demo-l"
		}
		return "demo-l"
	}
	return "" // reserved: nothing, ever
}

// conn is one subscription of the matrix.
type conn struct {
	name                       string
	class, transport, identity string
	resume                     bool
	want                       string // "ok" or a status
	status                     int
	body                       string
	events                     chan sse.Event // closed when the stream ends
	cancel                     context.CancelFunc
	// ready is closed once the subscription is registered with the hub:
	// at the answer's headers for SSE, at the first frame (the prelude
	// ends with a position frame) or the end for WebSocket.
	ready     chan struct{}
	readyOnce sync.Once
}

func (c *conn) setReady() { c.readyOnce.Do(func() { close(c.ready) }) }

func (e *env) open(t *testing.T, c *conn) {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.events = make(chan sse.Event, 64)
	c.ready = make(chan struct{})
	defer func() {
		if c.status != 200 {
			c.setReady()
		}
	}()
	h := http.Header{}
	host := e.apply(c.identity, h)
	q := url.Values{"topic": e.topics(c.class)}
	switch c.transport {
	case "ws":
		if c.resume {
			q.Set("lastEventID", e.epoch+"-0")
		}
		ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/ws?"+q.Encode(), &websocket.DialOptions{HTTPHeader: h, Host: host})
		if err != nil {
			close(c.events)
			if resp == nil {
				t.Errorf("%s: %v", c.name, err)
				return
			}
			c.status = resp.StatusCode
			b, _ := io.ReadAll(resp.Body)
			c.body = string(b)
			return
		}
		c.status = 200
		go func() {
			defer close(c.events)
			defer c.setReady()
			defer ws.CloseNow()
			for {
				_, b, err := ws.Read(ctx)
				if err != nil {
					return
				}
				c.setReady()
				var f struct{ Type, Event, Data string }
				json.Unmarshal(b, &f)
				if f.Type == "event" {
					c.events <- sse.Event{Type: f.Event, Data: f.Data}
				}
			}
		}()
		return
	case "events":
		if c.resume {
			h.Set("Last-Event-ID", e.epoch+"-0")
		}
	case "mercure":
		if c.resume {
			q.Set("lastEventID", "earliest")
		}
	}
	path := map[string]string{"events": "/events?", "mercure": "/.well-known/mercure?"}[c.transport]
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path+q.Encode(), nil)
	req.Header = h
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		close(c.events)
		t.Errorf("%s: %v", c.name, err)
		return
	}
	c.status = resp.StatusCode
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.body = string(b)
		close(c.events)
		return
	}
	c.setReady() // the hub subscription precedes the headers
	go func() {
		defer close(c.events)
		defer resp.Body.Close()
		for ev, err := range sse.Read(resp.Body) {
			if err != nil {
				return
			}
			c.events <- ev
		}
	}()
}

// TestMatrix runs the whole matrix, once per configuration.
func TestMatrix(t *testing.T) {
	for _, name := range []string{"keys", "dev"} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, name)
			e.before(t)
			t.Run("delivery", func(t *testing.T) { deliveryMatrix(t, e) })
			t.Run("routes", func(t *testing.T) { routeMatrix(t, e) })
			if n := e.srv.App.Policy().Undecided(); n != 0 {
				t.Fatalf("%d requests were answered by a handler that did not ask the policy", n)
			}
		})
	}
}

// deliveryMatrix subscribes every identity to every class through every
// transport, fresh and resumed, then publishes live events, and checks
// what each stream got.
func deliveryMatrix(t *testing.T, e *env) {
	var conns []*conn
	for _, class := range classes {
		for _, id := range identities {
			wants := strings.Fields(subscriptions[e.name][class][id])
			if len(wants) != len(transports) {
				t.Fatalf("no expectation for class %s, identity %s", class, id)
			}
			for i, tr := range transports {
				for _, resume := range []bool{false, true} {
					c := &conn{class: class, transport: tr, identity: id, resume: resume, want: wants[i]}
					c.name = fmt.Sprintf("%s %s %s resume=%v", tr, class, id, resume)
					conns = append(conns, c)
				}
			}
		}
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() { defer wg.Done(); e.open(t, c) }()
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c.cancel != nil {
				c.cancel()
			}
			for range c.events {
			}
		}
	}()
	for _, c := range conns {
		if c.class == "chat" && !c.resume && c.want == "ok" && c.status == http.StatusNoContent {
			// The answer is finished: a new subscriber is told there is
			// nothing more (SSE's 204; WebSocket's 4204 close).
			c.status = 200
			continue
		}
		switch {
		case c.want == "ok" && c.status != 200:
			t.Errorf("%s: refused with %d %s, want it served", c.name, c.status, c.body)
		case c.want != "ok" && strconv.Itoa(c.status) != c.want:
			t.Errorf("%s: %d %s, want %s", c.name, c.status, c.body, c.want)
		case c.want != "ok":
			var body struct{ Error, Code string }
			if json.Unmarshal([]byte(c.body), &body) != nil || body.Error == "" {
				t.Errorf("%s: refusal %q is not a JSON error", c.name, c.body)
			}
		}
	}
	// Publish the live events once every stream is subscribed, so that
	// "live" is live.
	for _, c := range conns {
		select {
		case <-c.ready:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not subscribed after 10 s", c.name)
		}
	}
	e.live(t)
	for _, c := range conns {
		if c.status != 200 {
			continue
		}
		if c.events == nil {
			continue
		}
		got, ended := read(c)
		if c.class == "chat" {
			if !c.resume {
				if got != "" {
					t.Errorf("%s: a finished answer's new subscriber got %q", c.name, got)
				}
				continue
			}
			if !strings.Contains(got, "<done>") {
				t.Errorf("%s: got %q, want the chat answer's done event", c.name, got)
			}
			continue
		}
		if ended {
			t.Errorf("%s: the stream ended before the end marker (got %q)", c.name, got)
			continue
		}
		want := expected(c.class, c.resume, e.name == "keys" && seesPrivate[c.identity] && !(c.transport == "mercure" && c.identity == "other-topic"))
		if got != want {
			t.Errorf("%s: got %q, want %q", c.name, got, want)
		}
	}
}

// read reads a stream until its "end" marker (or, for chat, its end), and
// returns the data before it, comma-separated; a chat answer's done event
// is shown as <done>.
func read(c *conn) (got string, ended bool) {
	var out []string
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				return strings.Join(out, ","), true
			}
			switch {
			case ev.Data == "end":
				return strings.Join(out, ","), false
			case ev.Type == "done":
				out = append(out, "<done>")
			case c.class == "chat" && ev.Type == "token":
			case ev.Type == "herald.reset":
				out = append(out, "<reset>")
			default:
				out = append(out, ev.Data)
			}
		case <-timeout:
			return strings.Join(out, ",") + ",<timeout>", false
		}
	}
}

// A route's row: how to call it, what kind of route it is, and the status
// it answers when the policy lets the request through.
type row struct {
	method, path, ctype, body string
	kind                      string
	ok                        int
}

// rows: every route of the app must have one (static pages and files are
// covered by their policy entry: Public on the static face). A route added
// without a row fails the matrix.
var rows = map[string]row{
	"/events":                             {kind: "transport"},
	"/ws":                                 {kind: "transport"},
	"GET /.well-known/mercure":            {kind: "transport"},
	"/publish":                            {"POST", "/publish", "application/json", `{"topic":"pub","data":"r"}`, "publish", 200},
	"/send":                               {"POST", "/send", "application/json", `{"clientId":"c","msgId":"m{n}","topic":"pub","data":"r"}`, "publish", 200},
	"POST /.well-known/mercure":           {"POST", "/.well-known/mercure", form, "topic=pub&data=r", "publish", 200},
	"/sse/broadcast":                      {"POST", "/sse/broadcast", form, "message=r", "demo-write", 200},
	"/sse/start-task":                     {"POST", "/sse/start-task", "", "", "demo-write", 200},
	"/sse/subscribe":                      {"GET", "/sse/subscribe", "", "", "demo-read", 200},
	"/sse/tasks":                          {"GET", "/sse/tasks", "", "", "demo-meta", 200},
	"POST /chat":                          {"POST", "/chat", "application/json", `{"messages":[{"role":"user","content":"hi"}]}`, "chat-create", 201},
	"GET /chat/stream/{id}":               {"GET", "/chat/stream/{chat}", "", "", "chat-read", 200},
	"POST /chat/stream/{id}/cancel":       {"POST", "/chat/stream/{chat}/cancel", "", "", "chat-cancel", 409},
	"/chat":                               {"PUT", "/chat", "", "", "public", 405},
	"/chat/stream/{id}":                   {"PUT", "/chat/stream/{chat}", "", "", "public", 405},
	"/chat/stream/{id}/cancel":            {"GET", "/chat/stream/{chat}/cancel", "", "", "public", 405},
	"POST /ai/chat":                       {"POST", "/ai/chat", "application/json", `{"id":"c{n}","messages":[{"id":"u1","role":"user","parts":[{"type":"text","text":"hi"}]}],"trigger":"submit-message"}`, "chat-create", 200},
	"GET /ai/chat/{id}/stream":            {"GET", "/ai/chat/none/stream", "", "", "chat-read", 204},
	"POST /ai/chat/{id}/stop":             {"POST", "/ai/chat/none/stop", "", "", "chat-create", 200}, // nothing running: no owner to check
	"/ai/chat":                            {"PUT", "/ai/chat", "", "", "public", 405},
	"/ai/chat/{id}/stream":                {"PUT", "/ai/chat/none/stream", "", "", "public", 405},
	"/ai/chat/{id}/stop":                  {"GET", "/ai/chat/none/stop", "", "", "public", 405},
	"/.well-known/mercure":                {"PUT", "/.well-known/mercure", "", "", "public", 405},
	"/.well-known/mercure/subscriptions":  {"GET", "/.well-known/mercure/subscriptions", "", "", "mercure-meta", 200},
	"/.well-known/mercure/subscriptions/": {"GET", "/.well-known/mercure/subscriptions/x", "", "", "mercure-meta", 200},
	"GET /admin/topics":                   {"GET", "/admin/topics", "", "", "admin-read", 200},
	"POST /admin/disconnect":              {"POST", "/admin/disconnect", form, "topic=nobody", "admin-write", 200},
	"POST /admin/purge":                   {"POST", "/admin/purge", form, "topic=nobody", "admin-write", 200},
	"GET /dashboard":                      {"GET", "/dashboard", "", "", "admin-read", 200},
	"GET /dashboard/stream":               {"GET", "/dashboard/stream", "", "", "admin-read", 200},
	"GET /ping":                           {"GET", "/ping", "", "", "probe", 204},
	"GET /healthz":                        {"GET", "/healthz", "", "", "probe", 200},
	"GET /readyz":                         {"GET", "/readyz", "", "", "probe", 200},
	"GET /metrics":                        {"GET", "/metrics", "", "", "probe", 200},
	"GET /v1/stream/":                     {"GET", "/v1/stream/matrix", "", "", "stream-read", 200},
	"PUT /v1/stream/":                     {"PUT", "/v1/stream/m{n}", "text/plain", "x", "publish", 201},
	"POST /v1/stream/":                    {"POST", "/v1/stream/matrix", "text/plain", "r", "publish", 204},
	"DELETE /v1/stream/":                  {"DELETE", "/v1/stream/none{n}", "", "", "publish", 404},
	"/v1/stream/":                         {"PATCH", "/v1/stream/matrix", "", "", "public", 405},
	// The Durable Streams subscriptions (internal/dssub): managing one is a
	// publish on its topic; a callback, ack or release carries the wake's
	// bearer token instead (none here: 401); the JWKS is public.
	"GET /v1/stream/__ds/jwks.json":                               {"GET", "/v1/stream/__ds/jwks.json", "", "", "public", 200},
	"PUT /v1/stream/__ds/subscriptions/{id}":                      {"PUT", "/v1/stream/__ds/subscriptions/m{n}", "application/json", `{"type":"pull-wake","streams":["matrix-idle"],"wake_stream":"matrix-wake"}`, "publish", 201},
	"GET /v1/stream/__ds/subscriptions/{id}":                      {"GET", "/v1/stream/__ds/subscriptions/matrixsub", "", "", "publish", 200},
	"DELETE /v1/stream/__ds/subscriptions/{id}":                   {"DELETE", "/v1/stream/__ds/subscriptions/none{n}", "", "", "publish", 204},
	"POST /v1/stream/__ds/subscriptions/{id}/streams":             {"POST", "/v1/stream/__ds/subscriptions/matrixsub/streams", "application/json", `{"streams":["matrix-idle2"]}`, "publish", 204},
	"DELETE /v1/stream/__ds/subscriptions/{id}/streams/{path...}": {"DELETE", "/v1/stream/__ds/subscriptions/matrixsub/streams/other", "", "", "publish", 204},
	"POST /v1/stream/__ds/subscriptions/{id}/claim":               {"POST", "/v1/stream/__ds/subscriptions/matrixsub/claim", "application/json", `{"worker":"w"}`, "publish", 409},
	"POST /v1/stream/__ds/subscriptions/{id}/callback":            {"POST", "/v1/stream/__ds/subscriptions/matrixsub/callback", "application/json", `{}`, "public", 401},
	"POST /v1/stream/__ds/subscriptions/{id}/ack":                 {"POST", "/v1/stream/__ds/subscriptions/matrixsub/ack", "application/json", `{}`, "public", 401},
	"POST /v1/stream/__ds/subscriptions/{id}/release":             {"POST", "/v1/stream/__ds/subscriptions/matrixsub/release", "application/json", `{}`, "public", 401},
	"GET /v1/stream/__ds/":                                        {"GET", "/v1/stream/__ds/other", "", "", "public", 404},
	"PUT /v1/stream/__ds/":                                        {"PUT", "/v1/stream/__ds/other", "text/plain", "x", "public", 404},
	"POST /v1/stream/__ds/":                                       {"POST", "/v1/stream/__ds/other", "text/plain", "x", "public", 404},
	"DELETE /v1/stream/__ds/":                                     {"DELETE", "/v1/stream/__ds/other", "", "", "public", 404},
	"/":                                                           {"GET", "/no-such-path", "", "", "public", 404},
}

// outcomes per route kind and identity (in the order of identities): "ok"
// (the row's status) or the refusal's status.
var outcomes = map[string]map[string]string{
	"keys": {
		"publish":      "401 401 401 401 403 ok 401 ok 403 ok ok",
		"demo-write":   "ok ok ok ok ok ok ok ok 403 ok ok",
		"demo-read":    "ok 401 401 401 ok ok 401 ok ok ok ok",
		"demo-meta":    "ok ok ok ok ok ok ok ok ok ok ok",
		"chat-create":  "401 401 401 401 403 ok 401 ok 403 ok ok",
		"chat-read":    "401 401 401 401 403 ok 401 ok ok ok ok",
		"stream-read":  "401 401 401 401 403 ok 401 ok ok ok ok",
		"chat-cancel":  "401 401 401 401 403 ok 401 ok 403 ok ok",
		"mercure-meta": "401 401 401 401 403 ok 401 ok ok ok ok",
		"admin-read":   "401 403 403 403 403 403 ok 403 401 403 403",
		"admin-write":  "401 403 403 403 403 403 ok 403 401 403 403",
		"probe":        "ok ok ok ok ok ok ok ok ok ok ok",
		"public":       "ok ok ok ok ok ok ok ok ok ok ok",
	},
	"dev": {
		"publish":      "ok ok ok ok ok ok ok 403 403 403 ok",
		"demo-write":   "ok ok ok ok ok ok ok ok 403 403 ok",
		"demo-read":    "ok ok ok ok ok ok ok ok ok 403 ok",
		"demo-meta":    "ok ok ok ok ok ok ok ok ok 403 ok",
		"chat-create":  "ok ok ok ok ok ok ok ok 403 403 ok",
		"chat-read":    "ok ok ok ok ok ok ok ok ok 403 ok",
		"stream-read":  "ok ok ok ok ok ok ok ok ok 403 ok",
		"chat-cancel":  "ok ok ok ok ok ok ok 403 403 403 ok",
		"mercure-meta": "ok ok ok ok ok ok ok 403 ok 403 ok",
		"admin-read":   "ok ok ok ok ok ok ok 403 ok 403 ok",
		"admin-write":  "ok ok ok ok ok ok ok 403 403 403 ok",
		"probe":        "ok ok ok ok ok ok ok ok ok ok ok",
		"public":       "ok ok ok ok ok ok ok ok ok ok ok",
	},
}

// routeMatrix calls every route of the app with every identity.
func routeMatrix(t *testing.T, e *env) {
	routes := e.srv.App.Routes()
	if len(routes) < len(rows) {
		t.Errorf("the app lists %d routes, fewer than the matrix's %d rows", len(routes), len(rows))
	}
	n := 0
	for _, rt := range routes {
		r, ok := rows[rt.Pattern]
		if !ok && rt.Route.Face == access.FaceStatic && rt.Route.Action == access.Public {
			// A page or file: public to everyone, whatever it is.
			method, path, _ := strings.Cut(rt.Pattern, " ")
			path = strings.NewReplacer("{$}", "", "{file}", "chat.js").Replace(path)
			r = row{method, path, "", "", "static", 0}
			ok = true
		}
		if !ok {
			t.Errorf("route %q (%s on face %s) has no row in the access matrix: add one", rt.Pattern, rt.Route.Action, rt.Route.Face)
			continue
		}
		if r.kind == "transport" {
			continue // the delivery matrix covers it
		}
		for i, id := range identities {
			n++
			status, body := e.call(t, r, id, n)
			name := fmt.Sprintf("%s %s as %s", r.method, r.path, id)
			if r.kind == "static" {
				if status == 401 || status == 403 || status >= 500 {
					t.Errorf("%s (a public page): %d %s", name, status, body)
				}
				continue
			}
			want := strings.Fields(outcomes[e.name][r.kind])
			if len(want) != len(identities) {
				t.Fatalf("no outcomes for kind %s", r.kind)
			}
			switch {
			case want[i] == "ok" && status != r.ok:
				t.Errorf("%s: %d %s, want %d", name, status, body, r.ok)
			case want[i] != "ok" && strconv.Itoa(status) != want[i]:
				t.Errorf("%s: %d %s, want %s", name, status, body, want[i])
			case status >= 400:
				// Herald's {"error": "..."}, or the Durable Streams
				// subscriptions' {"error": {"code": ..., "message": ...}}.
				var eb struct{ Error json.RawMessage }
				if json.Unmarshal([]byte(body), &eb) != nil || !validError(eb.Error) {
					t.Errorf("%s: %d answer %q is not a JSON error", name, status, body)
				}
			}
		}
	}
}

// validError reports whether an error body's "error" member says what was
// wrong: a non-empty string, or an object with a code and a message.
func validError(raw json.RawMessage) bool {
	var msg string
	if json.Unmarshal(raw, &msg) == nil {
		return msg != ""
	}
	var coded struct{ Code, Message string }
	return json.Unmarshal(raw, &coded) == nil && coded.Code != "" && coded.Message != ""
}

// call sends r's request as identity id and returns the status and the
// start of the body (streams are closed once their headers are read).
func (e *env) call(t *testing.T, r row, id string, n int) (int, string) {
	t.Helper()
	path := strings.NewReplacer("{chat}", e.chat, "{n}", strconv.Itoa(n)).Replace(r.path)
	body := strings.ReplaceAll(r.body, "{n}", strconv.Itoa(n))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, r.method, e.srv.URL+path, strings.NewReader(body))
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	if host := e.apply(id, req.Header); host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, path, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return resp.StatusCode, string(b)
}
