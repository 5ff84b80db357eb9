package mercure_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/sse"
)

// Separate keys for publishers and subscribers, as Mercure recommends.
const (
	pubKey = "publisher-secret-of-at-least-32-bytes-0123"
	subKey = "subscriber-secret-of-at-least-32-bytes-012"
)

// hubPath is the Mercure endpoint.
const hubPath = "/.well-known/mercure"

// startHub starts a Herald with publisher and subscriber keys, the
// subscriptions API on, and anonymous subscribers allowed.
func startHub(t *testing.T, mutate func(*config.Server)) *apptest.Server {
	t.Helper()
	return apptest.Start(t, func(c *config.Server) {
		c.Auth.Publisher.Key = pubKey
		c.Auth.Subscriber.Key = subKey
		c.Auth.AllowAnonymous = true
		c.Mercure.Subscriptions = true
		c.Core.KeepAlive = time.Hour
		if mutate != nil {
			mutate(c)
		}
	})
}

// token signs a token with key carrying a mercure claim.
func token(t testing.TB, key string, claim auth.MercureClaim, mutate ...func(*jwt.RegisteredClaims)) string {
	t.Helper()
	c := &auth.Claims{Mercure: &claim}
	for _, f := range mutate {
		f(&c.RegisteredClaims)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// publisher returns a token that may publish to every topic.
func publisher(t testing.TB) string {
	return token(t, pubKey, auth.MercureClaim{Publish: []string{"*"}})
}

// post sends a publish form with the token in a header (none if empty).
func post(t testing.TB, base, tok string, form url.Values) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+hubPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return do(t, req)
}

// publish publishes and returns the update's id.
func publish(t testing.TB, base string, form url.Values) string {
	t.Helper()
	resp, body := post(t, base, publisher(t), form)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish %v: %d %s", form, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("publish answer Content-Type %q, want text/plain", ct)
	}
	if body == "" {
		t.Fatal("publish answered an empty id")
	}
	return body
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

func do(t testing.TB, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(b)
}

// errorOf decodes a JSON error body.
func errorOf(t testing.TB, body string) string {
	t.Helper()
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
		t.Fatalf("not a JSON error body: %q", body)
	}
	return e.Error
}

// sub describes a subscribe request.
type sub struct {
	topics []string
	// tok goes in the Authorization header, the cookie or the query
	// parameter, as how says.
	tok, how string
	// lastID goes in the Last-Event-ID header; queryID in lastEventID,
	// snakeID in last_event_id.
	lastID, queryID, snakeID string
	cookie                   string // cookie name (default mercureAuthorization)
	// params are more query parameters: match, match_urlpattern...
	params url.Values
}

// open requests a subscription; on anything but 200 it returns the
// response and its body.
func open(t *testing.T, base string, s sub) (*testkit.Stream, *http.Response, string) {
	t.Helper()
	q := url.Values{}
	if len(s.topics) > 0 {
		q["topic"] = s.topics
	}
	for k, vs := range s.params {
		q[k] = append(q[k], vs...)
	}
	if s.queryID != "" {
		q.Set("lastEventID", s.queryID)
	}
	if s.snakeID != "" {
		q.Set("last_event_id", s.snakeID)
	}
	switch s.how {
	case "query":
		q.Set("authorization", s.tok)
	case "access_token":
		q.Set("access_token", s.tok)
	}
	hdr := testkit.LastEventID(s.lastID)
	if hdr == nil {
		hdr = http.Header{}
	}
	switch s.how {
	case "header":
		hdr.Set("Authorization", "Bearer "+s.tok)
	case "cookie":
		name := s.cookie
		if name == "" {
			name = "mercureAuthorization"
		}
		hdr.Set("Cookie", (&http.Cookie{Name: name, Value: s.tok}).String())
	}
	resp, cancel := testkit.Get(t, nil, base+hubPath+"?"+q.Encode(), hdr)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return nil, resp, string(b)
	}
	return testkit.NewStream(t, resp, cancel), resp, ""
}

// subscribe opens a subscription that must succeed.
func subscribe(t *testing.T, base string, s sub) *testkit.Stream {
	t.Helper()
	st, resp, body := open(t, base, s)
	if st == nil {
		t.Fatalf("subscribe %+v: %d %s", s, resp.StatusCode, body)
	}
	return st
}

// datas returns the data of events, joined with spaces.
func datas(evs []sse.Event) string {
	var s []string
	for _, ev := range evs {
		s = append(s, ev.Data)
	}
	return strings.Join(s, " ")
}

// accessToken signs an access token (header typ at+jwt) whose claims are
// the JSON text given, byte for byte, as the Mercure documents print
// them; "EXP" in it is replaced by an expiry an hour from now.
func accessToken(t testing.TB, key, claims string) string {
	t.Helper()
	return rawToken(t, key, `{"alg":"HS256","typ":"at+jwt"}`, claims)
}

// rawToken signs a token of the given header and claims texts with HS256.
func rawToken(t testing.TB, key, header, claims string) string {
	t.Helper()
	claims = strings.ReplaceAll(claims, "EXP", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
	if !json.Valid([]byte(claims)) || !json.Valid([]byte(header)) {
		t.Fatalf("not JSON: %s %s", header, claims)
	}
	enc := base64.RawURLEncoding.EncodeToString
	in := enc([]byte(header)) + "." + enc([]byte(claims))
	sig, err := jwt.SigningMethodHS256.Sign(in, []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + enc(sig)
}
