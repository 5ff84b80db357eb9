// Package cors answers browsers' cross-origin requests for the origins a
// server allows: preflights (OPTIONS) and the Access-Control-* headers of
// actual requests.
package cors

import (
	"net/http"
	"strings"

	"github.com/heraldpush/herald/internal/httpjson"
)

// AllowedHeaders are the request headers a cross-origin request may send.
var AllowedHeaders = []string{"Authorization", "Content-Type", "Last-Event-ID", "Cache-Control", "Accept", "X-Requested-With",
	// Durable Streams (/v1/stream/*).
	"If-None-Match", "Stream-TTL", "Stream-Expires-At", "Stream-Seq", "Stream-Closed", "Stream-Forked-From", "Stream-Fork-Offset",
	"Stream-Fork-Sub-Offset", "Producer-Id", "Producer-Epoch", "Producer-Seq"}

// ExposedHeaders are the response headers a page may read.
var ExposedHeaders = []string{"Retry-After", "Link",
	// Durable Streams (/v1/stream/*).
	"ETag", "Location", "Stream-Next-Offset", "Stream-Up-To-Date", "Stream-Cursor", "Stream-Closed", "Stream-TTL", "Stream-Expires-At",
	"Stream-SSE-Data-Encoding", "Producer-Epoch", "Producer-Seq", "Producer-Expected-Seq", "Producer-Received-Seq"}

// allowedMethods are the methods a preflight may ask for (PUT and DELETE
// for Durable Streams).
const allowedMethods = "GET, HEAD, POST, PUT, DELETE"

// Policy is a set of allowed origins. Create one with New. It is safe for
// concurrent use.
type Policy struct {
	list    []string
	origins map[string]bool
	any     bool
	allowed map[string]bool // lower-cased AllowedHeaders
}

// New returns the policy for origins: exact origins ("https://app.example")
// are allowed with credentials (cookies); "*" allows any origin without
// them, because a browser refuses credentials with a wildcard and
// reflecting any origin with credentials would let every site read what a
// logged-in user's cookie may see.
func New(origins []string) *Policy {
	p := &Policy{origins: make(map[string]bool), allowed: make(map[string]bool)}
	for _, o := range origins {
		if o == "*" {
			p.any = true
			continue
		}
		o = strings.ToLower(strings.TrimRight(o, "/"))
		p.origins[o] = true
		p.list = append(p.list, o)
	}
	for _, h := range AllowedHeaders {
		p.allowed[strings.ToLower(h)] = true
	}
	return p
}

// Origins returns the origins allowed by name, with credentials.
func (p *Policy) Origins() []string {
	if p == nil {
		return nil
	}
	return append([]string(nil), p.list...)
}

// Enabled reports whether any cross-origin access is allowed.
func (p *Policy) Enabled() bool { return p != nil && (p.any || len(p.origins) > 0) }

// Listed reports whether origin is allowed by name (not only by "*"):
// such origins may use cookies.
func (p *Policy) Listed(origin string) bool {
	return p != nil && p.origins[strings.ToLower(origin)]
}

// Allowed reports whether origin may make cross-origin requests.
func (p *Policy) Allowed(origin string) bool {
	return p != nil && (p.any || p.Listed(origin))
}

// Handler adds CORS to next: it answers preflights itself (204, or 403
// with a JSON error for an origin, method or header that is not allowed)
// and adds the Access-Control-* headers to the responses of allowed
// origins. Requests without an Origin header pass through untouched.
func (p *Policy) Handler(next http.Handler) http.Handler {
	if !p.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if !p.Allowed(origin) {
			if preflight {
				httpjson.Error(w, http.StatusForbidden, "CORS: origin "+quote(origin)+" is not allowed (see --cors-origins)")
				return
			}
			next.ServeHTTP(w, r) // without CORS headers the browser hides the answer
			return
		}
		allow := func() {
			if p.Listed(origin) {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Allow-Credentials", "true")
			} else {
				h.Set("Access-Control-Allow-Origin", "*")
			}
		}
		if !preflight {
			allow()
			h.Set("Access-Control-Expose-Headers", strings.Join(ExposedHeaders, ", "))
			next.ServeHTTP(w, r)
			return
		}
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		switch m := r.Header.Get("Access-Control-Request-Method"); m {
		case http.MethodGet, http.MethodPost, http.MethodHead, http.MethodPut, http.MethodDelete:
		default:
			httpjson.Error(w, http.StatusForbidden, "CORS: method "+quote(m)+" is not allowed ("+allowedMethods+")")
			return
		}
		var reqHeaders []string
		for _, v := range r.Header.Values("Access-Control-Request-Headers") {
			for _, name := range strings.Split(v, ",") {
				name = strings.ToLower(strings.TrimSpace(name))
				if name == "" {
					continue
				}
				if !p.allowed[name] {
					httpjson.Error(w, http.StatusForbidden, "CORS: request header "+quote(name)+" is not allowed ("+strings.Join(AllowedHeaders, ", ")+")")
					return
				}
				reqHeaders = append(reqHeaders, name)
			}
		}
		allow()
		h.Set("Access-Control-Allow-Methods", allowedMethods)
		if len(reqHeaders) > 0 {
			h.Set("Access-Control-Allow-Headers", strings.Join(reqHeaders, ", "))
		}
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
	})
}

// quote quotes s for an error message, cut to a sane length.
func quote(s string) string {
	if len(s) > 100 {
		s = s[:100] + "..."
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return '?'
		}
		return r
	}, s) + `"`
}
