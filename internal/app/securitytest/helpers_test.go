package securitytest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const secret = "test-secret-of-at-least-32-bytes-0123456789"

// startKeyed starts a server whose tokens are HS256 with secret.
func startKeyed(t *testing.T, mutate func(*config.Server)) *apptest.Server {
	t.Helper()
	return apptest.Start(t, func(c *config.Server) {
		c.Auth.JWT.Key = secret
		if mutate != nil {
			mutate(c)
		}
	})
}

// mint signs a token for sub with the given selectors, expiring after ttl
// (never when ttl is 0).
func mint(t testing.TB, sub string, publish, subscribe []string, ttl time.Duration) string {
	t.Helper()
	c := &auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: sub}, Mercure: &auth.MercureClaim{Publish: publish, Subscribe: subscribe}}
	if ttl != 0 {
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(ttl))
	}
	return signClaims(t, c)
}

func signClaims(t testing.TB, c jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// errBody is a JSON error answer.
type errBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// do sends req and returns the answer with its body read.
func do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, b
}

// publish posts a JSON event with token (none if empty) and returns the
// status and body.
func publish(t testing.TB, base, token string, ev map[string]any) (int, []byte) {
	t.Helper()
	body, _ := json.Marshal(ev)
	req, _ := http.NewRequest(http.MethodPost, base+"/publish", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, b := do(t, req)
	return resp.StatusCode, b
}

// mustPublish publishes and returns the event id.
func mustPublish(t testing.TB, base, token string, ev map[string]any) string {
	t.Helper()
	status, b := publish(t, base, token, ev)
	if status != http.StatusOK {
		t.Fatalf("publish %v: %d %s", ev, status, b)
	}
	var r struct{ ID string }
	if err := json.Unmarshal(b, &r); err != nil || r.ID == "" {
		t.Fatalf("publish answer %s", b)
	}
	return r.ID
}

// how a subscriber passes its token.
type via int

const (
	viaNone via = iota
	viaHeader
	viaCookie
	viaQuery
)

func eventsURL(base string, topics ...string) string {
	return base + "/events?" + url.Values{"topic": topics}.Encode()
}

// open requests GET /events for topics; it returns the response for the
// caller to check (the body is read by the stream only on 200).
func open(t *testing.T, base, token string, how via, lastID string, topics ...string) (*testkit.Stream, *http.Response, []byte) {
	t.Helper()
	u := eventsURL(base, topics...)
	if how == viaQuery {
		u += "&authorization=" + url.QueryEscape(token)
	}
	hdr := testkit.LastEventID(lastID)
	if hdr == nil {
		hdr = http.Header{}
	}
	switch how {
	case viaHeader:
		hdr.Set("Authorization", "Bearer "+token)
	case viaCookie:
		hdr.Set("Cookie", (&http.Cookie{Name: auth.CookieName, Value: token}).String())
	}
	resp, cancel := testkit.Get(t, nil, u, hdr)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return nil, resp, b
	}
	return testkit.NewStream(t, resp, cancel), resp, nil
}

// subscribe opens a stream and fails the test unless it is a 200.
func subscribe(t *testing.T, base, token string, how via, lastID string, topics ...string) *testkit.Stream {
	t.Helper()
	s, resp, b := open(t, base, token, how, lastID, topics...)
	if s == nil {
		t.Fatalf("subscribe %v: %d %s", topics, resp.StatusCode, b)
	}
	return s
}

// collect reads events until one whose data is marker arrives, and returns
// the data of those before it.
func collect(t *testing.T, s *testkit.Stream, marker string) []string {
	t.Helper()
	var out []string
	for _, ev := range s.UntilData(t, marker) {
		out = append(out, ev.Data)
	}
	return out
}

func decodeErr(t testing.TB, b []byte) errBody {
	t.Helper()
	var e errBody
	if err := json.Unmarshal(b, &e); err != nil || e.Error == "" {
		t.Fatalf("body is not a JSON error: %q", b)
	}
	return e
}

func jsonBody(v any) io.ReadCloser {
	b, _ := json.Marshal(v)
	return io.NopCloser(bytes.NewReader(b))
}
