package auth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/auth"
)

func TestTokenFromRequest(t *testing.T) {
	tests := []struct {
		name   string
		url    string
		header map[string][]string
		token  string
		src    auth.Source
		bad    bool
	}{
		{"none", "/events?topic=a", nil, "", auth.SourceNone, false},
		{"bearer", "/events", map[string][]string{"Authorization": {"Bearer abc"}}, "abc", auth.SourceHeader, false},
		{"bearer lower case", "/events", map[string][]string{"Authorization": {"bearer abc"}}, "abc", auth.SourceHeader, false},
		{"header wins over cookie and query", "/events?authorization=q", map[string][]string{"Authorization": {"Bearer h"}, "Cookie": {"heraldAuthorization=c"}}, "h", auth.SourceHeader, false},
		{"herald cookie", "/events", map[string][]string{"Cookie": {"heraldAuthorization=c1; mercureAuthorization=c2"}}, "c1", auth.SourceCookie, false},
		{"mercure cookie", "/events", map[string][]string{"Cookie": {"other=x; mercureAuthorization=c2"}}, "c2", auth.SourceCookie, false},
		{"cookie wins over query", "/events?authorization=q", map[string][]string{"Cookie": {"mercureAuthorization=c2"}}, "c2", auth.SourceCookie, false},
		{"query", "/events?topic=a&authorization=q", nil, "q", auth.SourceQuery, false},
		{"basic scheme", "/events", map[string][]string{"Authorization": {"Basic dXNlcjpwYXNz"}}, "", auth.SourceHeader, true},
		{"empty bearer", "/events", map[string][]string{"Authorization": {"Bearer "}}, "", auth.SourceHeader, true},
		{"two headers", "/events", map[string][]string{"Authorization": {"Bearer a", "Bearer b"}}, "", auth.SourceHeader, true},
		{"two query params", "/events?authorization=a&authorization=b", nil, "", auth.SourceQuery, true},
		{"huge", "/events?authorization=" + strings.Repeat("a", auth.MaxTokenLen+1), nil, "", auth.SourceQuery, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.url, nil)
			for k, vs := range tt.header {
				r.Header[k] = vs
			}
			tok, src, err := auth.TokenFromRequest(r)
			if tt.bad {
				var ae *auth.Error
				if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
					t.Fatalf("err = %v, want a 401 *auth.Error", err)
				}
				return
			}
			if err != nil || tok != tt.token || src != tt.src {
				t.Fatalf("got (%q, %v, %v), want (%q, %v)", tok, src, err, tt.token, tt.src)
			}
		})
	}
}

func TestRedacted(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/events?topic=a", "/events?topic=a"},
		{"/events?topic=a&authorization=eyJsecret", "/events?topic=a&authorization=REDACTED"},
		{"/events?Authorization=eyJ&token=t&access_token=x&jwt=j&id_token=i", "/events?Authorization=REDACTED&token=REDACTED&access_token=REDACTED&jwt=REDACTED&id_token=REDACTED"},
		{"/events?a=1;authorization=eyJsecret", "/events?a=1;authorization=REDACTED"},
		{"/events?%61uthorization=eyJsecret", "/events?%61uthorization=REDACTED"},
		{"/events?authorization", "/events?authorization"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := auth.Redacted(u); got != tt.want {
			t.Errorf("Redacted(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestMercureTokenFromRequest: the Mercure protocol's precedence, with the
// current protocol's access_token parameter and cookie beside 0.x's.
func TestMercureTokenFromRequest(t *testing.T) {
	for _, tt := range []struct {
		name, url, cookie, header, cookies string
		token                              string
		src                                auth.Source
		bad                                bool
	}{
		{"none", "/m?match=a", "", "", "", "", auth.SourceNone, false},
		{"header wins", "/m?access_token=q", "", "Bearer h", "__Secure-mercure_access_token=c", "h", auth.SourceHeader, false},
		{"access_token", "/m?access_token=q", "", "", "", "q", auth.SourceQuery, false},
		{"authorization", "/m?authorization=q", "", "", "", "q", auth.SourceQuery, false},
		{"query wins over cookie", "/m?access_token=q", "", "", "mercureAuthorization=c", "q", auth.SourceQuery, false},
		{"both query parameters", "/m?access_token=a&authorization=b", "", "", "", "", auth.SourceQuery, true},
		{"two access_token", "/m?access_token=a&access_token=b", "", "", "", "", auth.SourceQuery, true},
		{"0.x cookie first", "/m", "", "", "heraldAuthorization=h; __Secure-mercure_access_token=s; mercureAuthorization=m", "m", auth.SourceCookie, false},
		{"1.0 cookie", "/m", "", "", "heraldAuthorization=h; __Secure-mercure_access_token=s", "s", auth.SourceCookie, false},
		{"herald cookie last", "/m", "", "", "heraldAuthorization=h", "h", auth.SourceCookie, false},
		{"configured cookie", "/m", "hub", "", "mercureAuthorization=m; hub=x", "x", auth.SourceCookie, false},
		{"configured cookie replaces mercureAuthorization", "/m", "hub", "", "mercureAuthorization=m", "", auth.SourceNone, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.url, nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			if tt.cookies != "" {
				r.Header.Set("Cookie", tt.cookies)
			}
			tok, src, err := auth.MercureTokenFromRequest(r, tt.cookie)
			if tt.bad {
				var ae *auth.Error
				if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
					t.Fatalf("err = %v, want a 401", err)
				}
				return
			}
			if err != nil || tok != tt.token || src != tt.src {
				t.Fatalf("got %q %v %v, want %q %v", tok, src, err, tt.token, tt.src)
			}
		})
	}
}
