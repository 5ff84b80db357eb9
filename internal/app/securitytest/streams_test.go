package securitytest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/config"
)

// Durable Streams through the one door, with keys: a token's selectors
// decide per stream path (ds/<path>), a body over --ds-max-body is 413
// before it is read, appends are charged to --publish-rate (429 with
// Retry-After), reads without a token are refused unless
// --ds-anonymous-reads, and every answer carries the protocol's security
// headers.
func TestStreamsAccessAndLimits(t *testing.T) {
	srv := startKeyed(t, func(c *config.Server) {
		c.Streams.MaxBody = 1024
		c.HTTP.PublishRate = 0.001 // no refill within the test
		c.HTTP.PublishBurst = 3
	})
	tenant := "Bearer " + mint(t, "tenant-a", []string{"ds/tenant-a/*"}, []string{"ds/tenant-a/*"}, 0)
	other := "Bearer " + mint(t, "tenant-b", []string{"ds/tenant-b/*"}, []string{"ds/tenant-b/*"}, 0)
	u := srv.URL + "/v1/stream/tenant-a/log"
	cases := []struct {
		name, method, url, auth, body string
		hdr                           map[string]string
		status                        int
		code                          string
	}{
		{"create with the path's token", "PUT", u, tenant, "x", nil, 201, ""},
		{"create without a token", "PUT", srv.URL + "/v1/stream/tenant-a/other", "", "", nil, 401, "token_missing"},
		{"append with another path's token", "POST", u, other, "y", nil, 403, "topic_forbidden"},
		{"read with another path's token", "GET", u, other, "", nil, 403, "topic_forbidden"},
		{"read without a token", "GET", u, "", "", nil, 401, "token_missing"},
		{"read with the path's token", "GET", u, tenant, "", nil, 200, ""},
		{"body over --ds-max-body", "POST", u, tenant, strings.Repeat("z", 2048), nil, 413, "too_large"},
		{"append", "POST", u, tenant, "y", nil, 204, ""},
		{"over --publish-rate", "POST", u, tenant, "y", nil, 429, "rate_limited"},
	}
	for _, c := range cases {
		hdr := map[string]string{"Content-Type": "text/plain"}
		if c.auth != "" {
			hdr["Authorization"] = c.auth
		}
		status, eb, body := sendReq(t, c.method, c.url, c.body, hdr)
		if status != c.status || eb.Code != c.code {
			t.Errorf("%s: %d %s, want %d %q", c.name, status, body, c.status, c.code)
		}
	}
	// The security headers, on an error too.
	req, _ := http.NewRequest("GET", srv.URL+"/v1/stream/none", nil)
	resp, _ := do(t, req)
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cross-Origin-Resource-Policy") == "" {
		t.Errorf("a refusal's headers: %v", resp.Header)
	}

	// --ds-anonymous-reads: reads without a token, writes still need one.
	open := startKeyed(t, func(c *config.Server) { c.Streams.AnonymousReads = true })
	ou := open.URL + "/v1/stream/pub"
	if status, _, body := sendReq(t, "PUT", ou, "hello", map[string]string{"Content-Type": "text/plain", "Authorization": "Bearer " + mint(t, "w", []string{"ds/*"}, nil, 0)}); status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	if status, _, body := sendReq(t, "GET", ou, "", nil); status != 200 || string(body) != "hello" {
		t.Errorf("anonymous read with --ds-anonymous-reads: %d %s", status, body)
	}
	if status, _, _ := sendReq(t, "POST", ou, "x", map[string]string{"Content-Type": "text/plain"}); status != 401 {
		t.Errorf("anonymous append with --ds-anonymous-reads: %d, want 401", status)
	}
}
