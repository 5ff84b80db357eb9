package securitytest_test

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
)

func TestConnectionsPerIP(t *testing.T) {
	srv := startWith(t, func(c *config.Server) {
		c.HTTP.MaxConnectionsPerIP = 2
		c.HTTP.TrustedProxies = config.Strings{"127.0.0.1"}
	})
	from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }
	a := openWith(t, srv.URL, from("203.0.113.1"), "a")
	if a == nil {
		t.Fatal("first stream refused")
	}
	if openWith(t, srv.URL, from("203.0.113.1"), "b") == nil {
		t.Fatal("second stream refused")
	}
	resp, b := streamReq(t, srv.URL, from("203.0.113.1"), "c")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || decodeErr(t, b).Code != "too_many_connections" {
		t.Fatalf("third stream: %d %s", resp.StatusCode, b)
	}
	// Another address, loopback clients and probes are not limited.
	if openWith(t, srv.URL, from("203.0.113.2"), "c") == nil {
		t.Fatal("another address refused")
	}
	for i := 0; i < 3; i++ {
		subscribe(t, srv.URL, "", viaNone, "", "local")
	}
	r := mustReq(t, http.MethodGet, srv.URL+"/healthz")
	r.Header = from("203.0.113.1")
	if resp, _ := do(t, r); resp.StatusCode != 200 {
		t.Fatalf("healthz at the limit: %d", resp.StatusCode)
	}
	waitMetric(t, srv, "max_connections_per_ip", 1)
	// A slot frees when a stream ends.
	a.Close()
	testkit.WaitFor(t, "the slot to be released after the stream ended", func() bool {
		return openWith(t, srv.URL, from("203.0.113.1"), "c") != nil
	})
}

// streamReq requests GET /events with extra headers; on 200 the caller
// gets the open response (closed when the test ends).
func streamReq(t *testing.T, base string, h http.Header, topics ...string) (*http.Response, []byte) {
	t.Helper()
	req := mustReq(t, http.MethodGet, eventsURL(base, topics...))
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK {
		t.Cleanup(func() { resp.Body.Close() })
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// openWith opens a stream with extra headers; nil if it was refused.
func openWith(t *testing.T, base string, h http.Header, topics ...string) *testkit.Stream {
	t.Helper()
	resp, _ := streamReq(t, base, h, topics...)
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	return testkit.NewStream(t, resp, nil)
}

func TestConnectionsPerSubject(t *testing.T) {
	srv := startKeyed(t, func(c *config.Server) { c.HTTP.MaxConnectionsPerSubject = 2 })
	alice := mint(t, "alice", nil, []string{"*"}, time.Hour)
	alice2 := mint(t, "alice", nil, []string{"a"}, time.Hour) // another token, same subject
	bob := mint(t, "bob", nil, []string{"*"}, time.Hour)
	subscribe(t, srv.URL, alice, viaHeader, "", "a")
	subscribe(t, srv.URL, alice2, viaQuery, "", "a")
	s, resp, b := open(t, srv.URL, alice, viaCookie, "", "b")
	if s != nil || resp.StatusCode != http.StatusTooManyRequests || decodeErr(t, b).Code != "too_many_connections" {
		t.Fatalf("third stream of alice: %d %s", resp.StatusCode, b)
	}
	subscribe(t, srv.URL, bob, viaHeader, "", "a") // bob is not affected
	// A forged token claiming alice's subject is refused as invalid (401),
	// not counted against her (which would be 429).
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice"}).SignedString([]byte("forger-secret-forger-secret-forger-secret"))
	if s, resp, b := open(t, srv.URL, forged, viaHeader, "", "a"); s != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged alice: %d %s, want 401", resp.StatusCode, b)
	}
	waitMetric(t, srv, "max_connections_per_subject", 1)
}

func TestMaxConnections(t *testing.T) {
	srv := startWith(t, func(c *config.Server) { c.HTTP.MaxConnections = 2 })
	subscribe(t, srv.URL, "", viaNone, "", "a")
	subscribe(t, srv.URL, "", viaNone, "", "b")
	status, ctype, body := rawExchange(t, strings.TrimPrefix(srv.URL, "http://"), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if status != http.StatusServiceUnavailable || ctype != "application/json" {
		t.Fatalf("third connection: %d %s %s", status, ctype, body)
	}
	decodeErr(t, body)
	waitMetric(t, srv, "max_connections", 1)
}

func TestPublishRate(t *testing.T) {
	srv := startKeyed(t, func(c *config.Server) {
		c.HTTP.PublishRate = 1
		c.HTTP.PublishBurst = 3
	})
	tok := mint(t, "backend", []string{"*"}, nil, time.Hour)
	other := mint(t, "other", []string{"*"}, nil, time.Hour)
	for i := 0; i < 3; i++ {
		mustPublish(t, srv.URL, tok, map[string]any{"topic": "a", "data": "x"})
	}
	req := mustReq(t, http.MethodPost, srv.URL+"/publish")
	req.Body = io.NopCloser(strings.NewReader(`{"topic":"a","data":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, b := do(t, req)
	if resp.StatusCode != http.StatusTooManyRequests || decodeErr(t, b).Code != "rate_limited" {
		t.Fatalf("fourth publish: %d %s", resp.StatusCode, b)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	// Anonymous loopback clients (development mode's local publishers)
	// are not rate-limited.
	plain := startWith(t, func(c *config.Server) {
		c.HTTP.PublishRate = 1
		c.HTTP.PublishBurst = 1
	})
	for i := 0; i < 5; i++ {
		mustPublish(t, plain.URL, "", map[string]any{"topic": "a", "data": "x"})
	}
	// Another subject has its own budget.
	status, b := publish(t, srv.URL, other, map[string]any{"topic": "a", "data": "x"})
	if status != 200 {
		t.Fatalf("other subject: %d %s", status, b)
	}
	waitMetric(t, srv, "publish_rate", 1)
}

func TestMaxTopicsIsCounted(t *testing.T) {
	srv := startWith(t, func(c *config.Server) { c.Limits.MaxTopics = 2 })
	if s, resp, _ := open(t, srv.URL, "", viaNone, "", "a", "b", "c"); s != nil || resp.StatusCode != 400 {
		t.Fatalf("3 topics over a limit of 2: %d", resp.StatusCode)
	}
	waitMetric(t, srv, "max_topics", 1)
}

// TestIdleTimeoutSparesStreams keeps a stream open, with no event, for
// several idle timeouts: keep-alive comments flow, and an event published
// afterwards still arrives.
func TestIdleTimeoutSparesStreams(t *testing.T) {
	srv := startWith(t, func(c *config.Server) {
		c.HTTP.IdleTimeout = 200 * time.Millisecond
		c.Core.KeepAlive = 100 * time.Millisecond
	})
	s := subscribe(t, srv.URL, "", viaNone, "", "quiet")
	start := time.Now()
	for keepAlives := 0; keepAlives < 10 || time.Since(start) < time.Second; { // five idle timeouts
		b, ok := s.NextBlock(t)
		if !ok || b.HasData {
			t.Fatalf("idle stream: %v (open %v), want keep-alive comments", b, ok)
		}
		if len(b.Comments) > 0 {
			keepAlives++
		}
	}
	mustPublish(t, srv.URL, "", map[string]any{"topic": "quiet", "data": "still here"})
	if ev := s.Next(t); ev.Data != "still here" {
		t.Fatalf("got %+v", ev)
	}
	// An idle keep-alive connection, by contrast, is closed.
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 204 {
		t.Fatalf("ping: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF (closed by --idle-timeout)", err)
	}
}

// TestLogsRedactQueryTokens checks that a token given in the query string
// never reaches Herald's logs.
func TestLogsRedactQueryTokens(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := apptest.StartLogger(t, log, func(c *config.Server) { c.Auth.JWT.Key = secret })
	tok := mint(t, "alice", nil, []string{"*"}, time.Hour)
	s := subscribe(t, srv.URL, tok, viaQuery, "", "a")
	s.Close()
	open(t, srv.URL, "not-a-valid-token-but-secret-anyway", viaQuery, "", "a")
	req := mustReq(t, http.MethodGet, srv.URL+"/nope?token=admin-secret-value&Authorization=x")
	do(t, req)
	srv.Stop()
	out := buf.String()
	for _, secretText := range []string{tok, "not-a-valid-token-but-secret-anyway", "admin-secret-value", secret} {
		if strings.Contains(out, secretText) {
			t.Fatalf("log holds a credential %.20q...:\n%s", secretText, out)
		}
	}
	if !strings.Contains(out, "authorization=REDACTED") {
		t.Fatalf("no redacted request line in the log:\n%s", out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func mustReq(t testing.TB, method, u string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPostureIsLogged checks the start-up log says which posture the
// server runs in.
func TestPostureIsLogged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*config.Server)
		want   string
	}{
		{"development mode", nil, "DEVELOPMENT MODE"},
		{"keyed", func(c *config.Server) { c.Auth.JWT.Key = secret }, "token authentication on"},
		{"subscriber key only", func(c *config.Server) { c.Auth.Subscriber.Key = secret }, "no publisher key: only loopback clients may publish"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf syncBuffer
			srv := apptest.StartLogger(t, slog.New(slog.NewTextHandler(&buf, nil)), tc.mutate)
			srv.Stop()
			if !strings.Contains(buf.String(), tc.want) {
				t.Fatalf("log lacks %q:\n%s", tc.want, buf.String())
			}
		})
	}
}
