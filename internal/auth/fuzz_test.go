package auth_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/heraldpush/herald/internal/auth"
)

// FuzzVerify feeds tokens built from a fuzzed header and payload, both
// unsigned and correctly signed, and raw strings, to a Verifier: it must
// never panic, must refuse with a 401 *auth.Error, and may accept only a
// correctly signed HS256 token.
func FuzzVerify(f *testing.F) {
	f.Add(`{"alg":"HS256","typ":"JWT"}`, `{"sub":"a","mercure":{"publish":["*"]}}`, "x.y.z")
	f.Add(`{"alg":"none"}`, `{"exp":1}`, "")
	f.Add(`{"alg":"HS256","kid":"../../etc/passwd"}`, `{"mercure":{"subscribe":"*"}}`, "a.b")
	f.Add(`{"alg":"RS256","jku":"http://evil"}`, `{"exp":"soon","nbf":1e309}`, "....")
	f.Add(`{"alg":"HS256"}`, `{"mercure":{"publish":["a/**","b/*",""]},"aud":["x"]}`, "eyJ.eyJ.")
	f.Add(`{"alg":"HS256","typ":"at+jwt"}`, `{"exp":9999999999,"authorization_details":[{"type":"mercure","actions":["publish"],"topics":[{"match":"/a/:id","match_type":"urlpattern"}]}]}`, "")
	v, err := auth.NewVerifier(auth.VerifierOptions{Key: secret})
	if err != nil {
		f.Fatal(err)
	}
	enc := base64.RawURLEncoding
	f.Fuzz(func(t *testing.T, header, payload, raw string) {
		ctx := context.Background()
		signing := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(signing))
		signed := signing + "." + enc.EncodeToString(mac.Sum(nil))
		for i, tok := range []string{raw, signing + ".", signed} {
			g, err := v.Verify(ctx, tok)
			if err != nil {
				var ae *auth.Error
				if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || ae.Code == "" {
					t.Fatalf("token %d: error %v is not a 401 *auth.Error", i, err)
				}
				continue
			}
			if i != 2 {
				t.Fatalf("token %d accepted without a valid signature: %q", i, tok)
			}
			if g == nil || g.Identity == "" {
				t.Fatalf("accepted with grant %+v", g)
			}
		}
	})
}

// FuzzTokenFromRequest fuzzes the places a token is looked for.
func FuzzTokenFromRequest(f *testing.F) {
	f.Add("Bearer abc", "heraldAuthorization=x", "authorization=y&topic=a")
	f.Add("", "mercureAuthorization=%zz; a=b", "authorization=&authorization=2")
	f.Add("Basic Zm9vOmJhcg==", "", "a=1;authorization=2")
	f.Fuzz(func(t *testing.T, authz, cookie, query string) {
		r := httptest.NewRequest(http.MethodGet, "/events", nil)
		r.URL.RawQuery = query
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		tok, src, err := auth.TokenFromRequest(r)
		if err != nil {
			var ae *auth.Error
			if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
				t.Fatalf("error %v is not a 401 *auth.Error", err)
			}
			return
		}
		if (tok == "") != (src == auth.SourceNone) || len(tok) > auth.MaxTokenLen {
			t.Fatalf("token %q from %v", tok, src)
		}
		// Whatever the query, the redacted URL never holds a query token.
		if src == auth.SourceQuery {
			red := auth.Redacted(&url.URL{Path: "/events", RawQuery: query})
			if len(tok) >= 8 && contains(red, tok) {
				t.Fatalf("Redacted(%q) = %q still holds the token", query, red)
			}
		}
	})
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// FuzzAuthorizationDetails parses any authorization_details claim: no
// panic; an accepted claim has details with at least one action's worth of
// parsing and one topic each, within the limits.
func FuzzAuthorizationDetails(f *testing.F) {
	for _, s := range []string{
		`[{"type":"mercure","actions":["publish","subscribe"],"topics":[{"match":"*"}]}]`,
		`[{"type":"https://mercure.rocks/authorization-detail","actions":["subscribe"],"topics":[{"match":"https://example.com/books/:id","match_type":"urlpattern"}],"payload":{"u":1}}]`,
		`[{"type":"tenant","topics":"x"},{"type":"mercure","actions":["x"],"topics":[{"match_urlpattern":"/a"}]}]`,
		`[{"type":"mercure","actions":[],"topics":[]}]`,
		`[{"type":"mercure","actions":["publish"],"topics":[{"match":"a","matchType":"URLPattern"}]}]`,
		`{}`, `null`, `[null]`, `[1]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		ds, err := auth.ParseAuthorizationDetails([]byte(raw))
		if err != nil {
			return
		}
		topics := 0
		for _, d := range ds {
			if len(d.Topics) == 0 {
				t.Fatalf("%s: a detail without topics was accepted", raw)
			}
			topics += len(d.Topics)
			for _, m := range d.Topics {
				m.Match(m.String()) // must not panic
			}
		}
		if len(ds) > auth.MaxDetails || topics > auth.MaxSelectors {
			t.Fatalf("%s: over the limits: %d details, %d topics", raw, len(ds), topics)
		}
	})
}
