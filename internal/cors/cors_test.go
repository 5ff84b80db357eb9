package cors_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/heraldpush/herald/internal/cors"
)

func TestPolicy(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := cors.New([]string{"https://app.example", "http://localhost:3000"}).Handler(next)
	tests := []struct {
		name, method, origin, reqMethod, reqHeaders string
		status                                      int
		allowOrigin, credentials                    string
	}{
		{"no origin", "GET", "", "", "", 418, "", ""},
		{"allowed origin", "GET", "https://app.example", "", "", 418, "https://app.example", "true"},
		{"other origin passes without headers", "POST", "https://evil.example", "", "", 418, "", ""},
		{"preflight", "OPTIONS", "http://localhost:3000", "POST", "Content-Type, Authorization", 204, "http://localhost:3000", "true"},
		{"preflight of another origin", "OPTIONS", "https://evil.example", "POST", "", 403, "", ""},
		{"preflight for PUT (Durable Streams create)", "OPTIONS", "https://app.example", "PUT", "", 204, "https://app.example", "true"},
		{"preflight for PATCH", "OPTIONS", "https://app.example", "PATCH", "", 403, "", ""},
		{"preflight with a cookie header", "OPTIONS", "https://app.example", "POST", "cookie", 403, "", ""},
		{"plain OPTIONS", "OPTIONS", "https://app.example", "", "", 418, "https://app.example", "true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/publish", nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.reqMethod != "" {
				r.Header.Set("Access-Control-Request-Method", tt.reqMethod)
			}
			if tt.reqHeaders != "" {
				r.Header.Set("Access-Control-Request-Headers", tt.reqHeaders)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status || w.Header().Get("Access-Control-Allow-Origin") != tt.allowOrigin || w.Header().Get("Access-Control-Allow-Credentials") != tt.credentials {
				t.Fatalf("got %d %v", w.Code, w.Header())
			}
		})
	}
	if cors.New(nil).Enabled() || cors.New(nil).Handler(next) == nil {
		t.Fatal("an empty policy is disabled and passes through")
	}
	any := cors.New([]string{"*"})
	if !any.Allowed("https://x.example") || any.Listed("https://x.example") {
		t.Fatal("* allows every origin but lists none (no credentials)")
	}
}
