package securitytest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/browsertest"
	"github.com/heraldpush/herald/internal/config"
)

func preflight(t *testing.T, base, path, origin, method, headers string) (*http.Response, []byte) {
	t.Helper()
	r := mustReq(t, http.MethodOptions, base+path)
	r.Header.Set("Origin", origin)
	r.Header.Set("Access-Control-Request-Method", method)
	if headers != "" {
		r.Header.Set("Access-Control-Request-Headers", headers)
	}
	return do(t, r)
}

func TestCORSPreflight(t *testing.T) {
	const app = "https://app.example"
	srv := startKeyed(t, func(c *config.Server) { c.HTTP.CORSOrigins = config.Strings{app} })
	// Durable Streams' preflights: their methods and headers.
	dsResp, b := preflight(t, srv.URL, "/v1/stream/s", app, "PUT", "content-type, stream-ttl, producer-id, if-none-match")
	if dsResp.StatusCode != http.StatusNoContent || !strings.Contains(dsResp.Header.Get("Access-Control-Allow-Methods"), "DELETE") ||
		dsResp.Header.Get("Access-Control-Allow-Headers") != "content-type, stream-ttl, producer-id, if-none-match" {
		t.Fatalf("Durable Streams preflight: %d %v %s", dsResp.StatusCode, dsResp.Header, b)
	}
	for _, path := range []string{"/publish", "/send", "/chat", "/events"} {
		t.Run(path, func(t *testing.T) {
			resp, b := preflight(t, srv.URL, path, app, "POST", "authorization, content-type")
			h := resp.Header
			if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != app ||
				h.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
				h.Get("Access-Control-Allow-Headers") != "authorization, content-type" || h.Get("Access-Control-Max-Age") == "" {
				t.Fatalf("preflight: %d %v %s", resp.StatusCode, h, b)
			}
		})
	}
	tests := []struct{ name, origin, method, headers string }{
		{"foreign origin", "https://evil.example", "POST", ""},
		{"origin with another port", "https://app.example:8443", "POST", ""},
		{"origin of another scheme", "http://app.example", "POST", ""},
		{"null origin", "null", "POST", ""},
		{"method PATCH", app, "PATCH", ""}, // PUT and DELETE are Durable Streams'
		{"unknown header", app, "POST", "x-evil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := preflight(t, srv.URL, "/publish", tt.origin, tt.method, tt.headers)
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
			}
			decodeErr(t, b)
		})
	}
	// Actual requests of an allowed origin carry the CORS headers, errors
	// included (so that pages can read them).
	r := mustReq(t, http.MethodGet, srv.URL+"/events?topic=a")
	r.Header.Set("Origin", app)
	resp, _ := do(t, r)
	if resp.StatusCode != 401 || resp.Header.Get("Access-Control-Allow-Origin") != app || !strings.Contains(resp.Header.Get("Vary"), "Origin") {
		t.Fatalf("401 for an allowed origin: %v", resp.Header)
	}
	// "*": any origin, never with credentials.
	srv2 := startKeyed(t, func(c *config.Server) { c.HTTP.CORSOrigins = config.Strings{"*"} })
	resp, _ = preflight(t, srv2.URL, "/publish", "https://any.example", "POST", "authorization")
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("wildcard preflight: %d %v", resp.StatusCode, resp.Header)
	}
	// Without --cors-origins there is no CORS at all.
	srv3 := startKeyed(t, nil)
	resp, _ = preflight(t, srv3.URL, "/publish", app, "POST", "")
	if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.StatusCode < 400 {
		t.Fatalf("no CORS configured: %d %v", resp.StatusCode, resp.Header)
	}
}

// page serves an HTML page with the given script, on its own port: its own
// origin.
func page(t *testing.T, script string) *httptest.Server {
	t.Helper()
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>page</title><script>%s</script>", body)
	}))
	body = script
	t.Cleanup(srv.Close)
	return srv
}

// TestCORSInChromium runs pages of two other origins in a real browser: the
// allowed one publishes with a bearer token (a preflighted request) and
// receives a private event over EventSource authenticated by a cookie; the
// other cannot publish nor read a stream.
func TestCORSInChromium(t *testing.T) {
	pubTok := mint(t, "page-publisher", []string{"room/*"}, nil, time.Hour)
	subTok := mint(t, "page-user", nil, []string{"room/*"}, time.Hour)
	script := func(herald string) string {
		return fmt.Sprintf(`
window.got = []; window.errors = []; window.status = null;
document.cookie = "heraldAuthorization=%s; path=/";
const es = new EventSource(%q + "/events?topic=room%%2F1", {withCredentials: true});
es.onmessage = (e) => window.got.push(e.data);
es.onerror = () => window.errors.push(es.readyState);
es.onopen = () => {
  fetch(%q + "/publish", {method: "POST", headers: {"Authorization": "Bearer %s", "Content-Type": "application/json"},
    body: JSON.stringify({topic: "room/1", data: "private-hello", private: true})})
  .then(r => { window.status = r.status; }, e => { window.status = "error: " + e; });
};
`, subTok, herald, herald, pubTok)
	}
	good := page(t, "")
	evil := page(t, "")
	srv := startKeyed(t, func(c *config.Server) { c.HTTP.CORSOrigins = config.Strings{good.URL} })
	// Serve the script now that Herald's URL is known.
	good.Config.Handler = scriptHandler(script(srv.URL))
	evil.Config.Handler = scriptHandler(fmt.Sprintf(`
window.status = null; window.esState = null;
fetch(%q + "/publish", {method: "POST", headers: {"Authorization": "Bearer %s", "Content-Type": "application/json"},
  body: JSON.stringify({topic: "room/1", data: "evil"})})
  .then(r => { window.status = r.status; }, e => { window.status = "blocked"; });
const es = new EventSource(%q + "/events?topic=room%%2F1&authorization=%s", {withCredentials: true});
es.onerror = () => { window.esState = es.readyState; };
`, srv.URL, pubTok, srv.URL, subTok))

	ctx := browsertest.New(t, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(good.URL)); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(ctx, chromedp.Poll[[]string](`window.got.length > 0 ? window.got : null`, chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Evaluate[any](`[window.status, window.errors, document.cookie]`))
		t.Fatalf("allowed origin got no event: %v (status, errors, cookie: %v)", err, status)
	}
	if len(got) != 1 || got[0] != "private-hello" {
		t.Fatalf("allowed origin got %q", got)
	}
	if status, err := chromedp.Run(ctx, chromedp.Evaluate[any](`window.status`)); err != nil || fmt.Sprint(status) != "200" {
		t.Fatalf("publish status %v %v", status, err)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(evil.URL)); err != nil {
		t.Fatal(err)
	}
	res, err := chromedp.Run(ctx, chromedp.Poll[[]any](`window.status !== null && window.esState !== null ? [window.status, window.esState] : null`, chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	// fetch fails at the preflight; the EventSource fails for want of CORS
	// headers and is closed (readyState 2) instead of reconnecting.
	if res[0] != "blocked" || fmt.Sprint(res[1]) != "2" {
		t.Fatalf("foreign origin: fetch %v, EventSource readyState %v", res[0], res[1])
	}
}

func scriptHandler(script string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>page</title><script>%s</script>", script)
	})
}
