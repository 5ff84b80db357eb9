package securitytest_test

import (
	"bufio"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	dto "github.com/prometheus/client_model/go"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
)

const (
	audience = "herald"
	issuer   = "https://id.example"
)

// hostileToken signs claims with aud and iss set as the hostile server
// expects, changed by mutate.
func hostileToken(t testing.TB, key any, m jwt.SigningMethod, mutate func(*auth.Claims), header map[string]any) string {
	t.Helper()
	c := &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "backend", Audience: jwt.ClaimStrings{audience}, Issuer: issuer,
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Mercure: &auth.MercureClaim{Publish: []string{"orders/*"}, Subscribe: []string{"orders/*"}},
	}
	if mutate != nil {
		mutate(c)
	}
	tok := jwt.NewWithClaims(m, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hostileCase is one bad request: either an HTTP request built by req, or
// raw bytes written to a TCP connection.
type hostileCase struct {
	name string
	req  func(base string) *http.Request
	raw  string
	// slow: sent to the server with a short --read-body-timeout.
	slow   bool
	status int
	// plain: the answer comes from Go's HTTP server before any handler
	// runs (malformed HTTP), so its body is text, not JSON.
	plain bool
}

func TestHostileRequests(t *testing.T) {
	// Bodies get all the time a busy machine may need (a 2 MiB body that
	// takes over a short --read-body-timeout to arrive is a 408, not the
	// 413 its size calls for); the slow-body case has a server of its own
	// with a short timeout.
	srv := startKeyed(t, func(c *config.Server) {
		c.Auth.Audience, c.Auth.Issuer = audience, issuer
		c.HTTP.ReadBodyTimeout = time.Minute
	})
	slow := startKeyed(t, func(c *config.Server) {
		c.Auth.Audience, c.Auth.Issuer = audience, issuer
		c.HTTP.ReadBodyTimeout = 500 * time.Millisecond
	})
	good := hostileToken(t, []byte(secret), jwt.SigningMethodHS256, nil, nil)
	wrongKey := hostileToken(t, []byte("some-other-secret-some-other-secret-0000"), jwt.SigningMethodHS256, nil, nil)
	attacker, _ := rsa.GenerateKey(rand.Reader, 2048)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"aud": audience, "iss": issuer, "mercure": map[string]any{"publish": []string{"*"}}}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	parts := strings.Split(good, ".")
	// The good token's payload swapped for one granting everything.
	evil, _ := json.Marshal(map[string]any{"aud": audience, "iss": issuer, "mercure": map[string]any{"publish": []string{"*"}}})
	forged := parts[0] + "." + b64(evil) + "." + parts[2]

	pub := func(token, ct, body string) func(string) *http.Request {
		return func(base string) *http.Request {
			r, _ := http.NewRequest(http.MethodPost, base+"/publish", strings.NewReader(body))
			if ct != "" {
				r.Header.Set("Content-Type", ct)
			}
			if token != "" {
				r.Header.Set("Authorization", "Bearer "+token)
			}
			return r
		}
	}
	jsonPub := func(token, body string) func(string) *http.Request { return pub(token, "application/json", body) }
	okBody := `{"topic":"orders/1","data":"x"}`
	get := func(path string, header ...string) func(string) *http.Request {
		return func(base string) *http.Request {
			r, _ := http.NewRequest(http.MethodGet, base+path, nil)
			for i := 0; i+1 < len(header); i += 2 {
				r.Header.Set(header[i], header[i+1])
			}
			return r
		}
	}
	sub := "&authorization=" + good
	method := func(m, path string) func(string) *http.Request {
		return func(base string) *http.Request {
			r, _ := http.NewRequest(m, base+path, nil)
			return r
		}
	}
	manyTopics := strings.Repeat("topic=orders%2Fx&", 10000)

	cases := []hostileCase{
		// Tokens.
		{name: "publish without token", req: jsonPub("", okBody), status: 401},
		{name: "forged payload, original signature", req: jsonPub(forged, okBody), status: 401},
		{name: "alg none", req: jsonPub(none, okBody), status: 401},
		{name: "alg none with empty signature and trailing dot", req: jsonPub(strings.TrimSuffix(none, ".")+".", okBody), status: 401},
		{name: "wrong key", req: jsonPub(wrongKey, okBody), status: 401},
		{name: "HS512 with the right secret (alg not accepted)", req: jsonPub(hostileToken(t, []byte(secret), jwt.SigningMethodHS512, nil, nil), okBody), status: 401},
		{name: "RS256 by an attacker's key", req: jsonPub(hostileToken(t, attacker, jwt.SigningMethodRS256, nil, nil), okBody), status: 401},
		{name: "jku pointing to an attacker's key set", req: jsonPub(hostileToken(t, attacker, jwt.SigningMethodRS256, nil, map[string]any{"jku": "http://127.0.0.1:1/jwks", "kid": "a"}), okBody), status: 401},
		{name: "kid path traversal", req: jsonPub(hostileToken(t, []byte("x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x-x"), jwt.SigningMethodHS256, nil, map[string]any{"kid": "../../../../dev/null"}), okBody), status: 401},
		{name: "expired", req: jsonPub(hostileToken(t, []byte(secret), jwt.SigningMethodHS256, func(c *auth.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Second)) }, nil), okBody), status: 401},
		{name: "not valid yet", req: jsonPub(hostileToken(t, []byte(secret), jwt.SigningMethodHS256, func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) }, nil), okBody), status: 401},
		{name: "wrong audience", req: jsonPub(hostileToken(t, []byte(secret), jwt.SigningMethodHS256, func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other"} }, nil), okBody), status: 401},
		{name: "wrong issuer", req: jsonPub(hostileToken(t, []byte(secret), jwt.SigningMethodHS256, func(c *auth.Claims) { c.Issuer = "https://evil.example" }, nil), okBody), status: 401},
		{name: "claims of the wrong type", req: jsonPub(signClaims(t, jwt.MapClaims{"aud": audience, "iss": issuer, "mercure": map[string]any{"publish": "*"}}), okBody), status: 401},
		{name: "garbage token", req: jsonPub("abc", okBody), status: 401},
		{name: "Basic scheme", req: func(base string) *http.Request {
			r := pub("", "application/json", okBody)(base)
			r.SetBasicAuth("admin", "admin")
			return r
		}, status: 401},
		{name: "two Authorization headers", req: func(base string) *http.Request {
			r := jsonPub(good, okBody)(base)
			r.Header.Add("Authorization", "Bearer "+wrongKey)
			return r
		}, status: 401},
		{name: "subscribe with a forged query token", req: get("/events?topic=orders%2F1&authorization=" + forged), status: 401},
		{name: "subscribe without token", req: get("/events?topic=orders%2F1"), status: 401},
		{name: "subscribe to a topic not covered", req: get("/events?topic=admin" + sub), status: 403},
		{name: "publish to a topic not covered", req: jsonPub(good, `{"topic":"admin","data":"x"}`), status: 403},
		{name: "cookie token from a foreign page", req: func(base string) *http.Request {
			r := pub("", "application/x-www-form-urlencoded", "topic=orders%2F1&data=x")(base)
			r.AddCookie(&http.Cookie{Name: auth.CookieName, Value: good})
			r.Header.Set("Origin", "https://evil.example")
			return r
		}, status: 403},
		// Sizes.
		{name: "oversized JSON body", req: jsonPub(good, `{"topic":"orders/1","data":"`+strings.Repeat("a", 2<<20)+`"}`), status: 413},
		{name: "oversized form body", req: pub(good, "application/x-www-form-urlencoded", "topic=orders%2F1&data="+strings.Repeat("a", 4<<20)), status: 413},
		{name: "oversized header", req: get("/events?topic=orders%2F1"+sub, "X-Padding", strings.Repeat("a", 100<<10)), status: 431},
		{name: "10k topics in one URL", req: get("/events?" + manyTopics + sub[1:]), status: 431},
		{name: "65 topics (over --max-topics)", req: get("/events?" + strings.Repeat("topic=orders%2Fx&", 65) + sub[1:]), status: 400},
		{name: "batch over --max-batch", req: jsonPub(good, "["+strings.TrimSuffix(strings.Repeat(okBody+",", 1001), ",")+"]"), status: 400},
		{name: "deeply nested JSON", req: jsonPub(good, `{"topic":"orders/1","data":`+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+`}`), status: 400},
		// Injection.
		{name: "CR LF in a subscribed topic", req: get("/events?topic=orders%2F1%0d%0aevent:%20x" + sub), status: 400},
		{name: "CR LF in a published topic", req: jsonPub(good, `{"topic":"orders/1\r\nid: 5","data":"x"}`), status: 400},
		{name: "LF in the event type", req: jsonPub(good, `{"topic":"orders/1","event":"x\ndata: injected","data":"x"}`), status: 400},
		{name: "CR in the event type (form)", req: pub(good, "application/x-www-form-urlencoded", "topic=orders%2F1&event=x%0Did:%201&data=x"), status: 400},
		{name: "reserved event type", req: jsonPub(good, `{"topic":"orders/1","event":"herald.reset","data":"x"}`), status: 400},
		// A publish id is an idempotency key (retries are stored once), never
		// the event's id: one that is not a plain token is refused.
		{name: "publish id with a space", req: jsonPub(good, `{"topic":"orders/1","id":"1 999","data":"x"}`), status: 400},
		{name: "publish id with a line break", req: jsonPub(good, `{"topic":"orders/1","id":"1\nid: 5","data":"x"}`), status: 400},
		{name: "unknown form field", req: pub(good, "application/x-www-form-urlencoded", "topic=orders%2F1&data=x&retry=1"), status: 400},
		{name: "invalid UTF-8 data", req: pub(good, "application/x-www-form-urlencoded", "topic=orders%2F1&data=%ff%fe"), status: 400},
		{name: "invalid UTF-8 topic", req: get("/events?topic=orders%2F%ff" + sub), status: 400},
		{name: "bad escape in query", req: get("/events?topic=%zz" + sub), status: 400},
		{name: "trailing JSON", req: jsonPub(good, okBody+`{"topic":"orders/2"}`), status: 400},
		// Paths and methods.
		{name: "dot segments", req: get("/events/../publish"), status: 400},
		{name: "encoded dot segments", req: get("/%2e%2e/publish"), status: 400},
		{name: "empty segment", req: get("//publish"), status: 400},
		{name: "NUL in path", req: get("/events%00"), status: 400},
		{name: "unknown path", req: get("/etc/passwd"), status: 404},
		{name: "DELETE /publish", req: method(http.MethodDelete, "/publish"), status: 405},
		{name: "PUT /events", req: method(http.MethodPut, "/events?topic=a"), status: 405},
		{name: "no Content-Type", req: pub(good, "", okBody), status: 415},
		{name: "multipart body", req: pub(good, "multipart/form-data; boundary=x", "--x--"), status: 415},
		// Raw HTTP.
		{name: "malformed request line", raw: "GARBAGE\r\n\r\n", status: 400, plain: true},
		{name: "header without colon", raw: "GET /events HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", status: 400, plain: true},
		{name: "slow body", raw: "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer " + good + "\r\nContent-Length: 1000\r\n\r\n{\"topic\":", status: 408, slow: true},
	}
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	addr := strings.TrimPrefix(srv.URL, "http://")
	client := &http.Client{Timeout: 10 * time.Second}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var (
				status int
				ctype  string
				body   []byte
			)
			if tc.raw != "" {
				to := addr
				if tc.slow {
					to = strings.TrimPrefix(slow.URL, "http://")
				}
				status, ctype, body = rawExchange(t, to, tc.raw)
			} else {
				resp, err := client.Do(tc.req(srv.URL))
				if err != nil {
					t.Fatalf("request failed (hang or reset?): %v", err)
				}
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				status, ctype = resp.StatusCode, resp.Header.Get("Content-Type")
			}
			if status != tc.status {
				t.Fatalf("status %d, want %d; body %.300s", status, tc.status, body)
			}
			if tc.plain {
				return
			}
			if ctype != "application/json" {
				t.Fatalf("Content-Type %q, want application/json; body %.300s", ctype, body)
			}
			decodeErr(t, body)
		})
	}
	// Nothing above was a server error.
	if n := rejected(srv, "header_too_large"); n < 2 {
		t.Errorf("header_too_large rejections = %v, want >= 2", n)
	}
}

func b64(b []byte) string {
	return strings.TrimRight(strings.NewReplacer("+", "-", "/", "_").Replace(encodeStd(b)), "=")
}

func encodeStd(b []byte) string {
	const enc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var sb strings.Builder
	for i := 0; i < len(b); i += 3 {
		var n uint32
		k := 0
		for j := 0; j < 3; j++ {
			n <<= 8
			if i+j < len(b) {
				n |= uint32(b[i+j])
				k++
			}
		}
		for j := 0; j < 4; j++ {
			if j <= k {
				sb.WriteByte(enc[(n>>(18-6*j))&63])
			} else {
				sb.WriteByte('=')
			}
		}
	}
	return sb.String()
}

// rawExchange writes raw to a new connection and reads the answer's status,
// content type and body (up to 64 KiB), failing if none comes in 10 s.
func rawExchange(t *testing.T, addr, raw string) (int, string, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no HTTP answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// TestSlowHeaders sends a request's headers a few bytes at a time: the
// server must drop the connection once --read-header-timeout passes, and
// count it.
func TestSlowHeaders(t *testing.T) {
	srv := startWith(t, func(c *config.Server) { c.HTTP.ReadHeaderTimeout = 300 * time.Millisecond })
	addr := strings.TrimPrefix(srv.URL, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	closed := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, c)
		closed <- err
	}()
	io.WriteString(c, "GET /events?topic=a HTTP/1.1\r\nHost: x\r\n")
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-closed:
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("connection closed after %v", d)
			}
			waitMetric(t, srv, "header_timeout", 1)
			return
		case <-tick.C:
			fmt.Fprintf(c, "X-%d: y\r\n", i)
		case <-time.After(10 * time.Second):
			t.Fatal("slow client still connected after 10s")
		}
	}
}

func waitMetric(t *testing.T, srv *apptest.Server, reason string, min float64) {
	t.Helper()
	testkit.WaitFor(t, fmt.Sprintf("herald_requests_rejected_total{reason=%q} >= %v", reason, min), func() bool {
		return rejected(srv, reason) >= min
	})
}

// rejected returns herald_requests_rejected_total{reason}.
func rejected(srv *apptest.Server, reason string) float64 {
	var m dto.Metric
	if err := srv.App.Metrics().Rejected.WithLabelValues(reason).Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}

// TestDataCannotInjectFields publishes data that looks like SSE fields: the
// subscriber gets one event with the data intact, the server's id and the
// default type.
func TestDataCannotInjectFields(t *testing.T) {
	srv := startWith(t, nil)
	s := subscribe(t, srv.URL, "", viaNone, "", "inj")
	evil := "line1\n\nid: 999-1\nevent: herald.reset\ndata: forged\r\nretry: 1\rdata: x"
	id := mustPublish(t, srv.URL, "", map[string]any{"topic": "inj", "data": evil})
	ev := s.Next(t)
	// An SSE decoder turns CR and CRLF into LF.
	want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(evil)
	if ev.Data != want || ev.ID != id || ev.Type != "message" {
		t.Fatalf("got id %q type %q data %q; want id %q, type message, data %q", ev.ID, ev.Type, ev.Data, id, want)
	}
	mustPublish(t, srv.URL, "", map[string]any{"topic": "inj", "data": "next"})
	if ev := s.Next(t); ev.Data != "next" {
		t.Fatalf("an extra event was injected: %+v", ev)
	}
}
