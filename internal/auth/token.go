package auth

import (
	"net/http"
	"net/url"
	"strings"
)

// Source tells where a request's token was found.
type Source uint8

const (
	// SourceNone: the request carries no token.
	SourceNone Source = iota
	// SourceHeader: "Authorization: Bearer <token>".
	SourceHeader
	// SourceCookie: the heraldAuthorization or mercureAuthorization cookie.
	SourceCookie
	// SourceQuery: the "authorization" query parameter.
	SourceQuery
)

func (s Source) String() string {
	switch s {
	case SourceHeader:
		return "header"
	case SourceCookie:
		return "cookie"
	case SourceQuery:
		return "query"
	}
	return "none"
}

// Cookie names, in the order they are looked at.
const (
	CookieName        = "heraldAuthorization"
	MercureCookieName = "mercureAuthorization"
)

// QueryParam is the query parameter a token may be passed in, for clients
// that can set neither headers nor cookies (EventSource across sites).
const QueryParam = "authorization"

// AccessTokenParam is RFC 6750's query parameter for a bearer token, which
// the current Mercure protocol reads (MercureTokenFromRequest).
const AccessTokenParam = "access_token"

// MercureAccessTokenCookie is the cookie the current Mercure protocol
// recommends for a browser's access token.
const MercureAccessTokenCookie = "__Secure-mercure_access_token"

// MaxTokenLen bounds the length of a token, in bytes.
const MaxTokenLen = 16 << 10

// TokenFromRequest returns the request's token and where it was found, looking
// in this order: the Authorization header (scheme Bearer), the
// heraldAuthorization cookie, the mercureAuthorization cookie, the
// authorization query parameter. The first source present wins, even if a
// later one holds another token. It returns an *Error (401) for an
// Authorization header of another scheme, a repeated header or parameter,
// or a token longer than MaxTokenLen; ("", SourceNone, nil) when there is
// no token.
func TokenFromRequest(r *http.Request) (string, Source, error) {
	if hs := r.Header.Values("Authorization"); len(hs) > 0 {
		if len(hs) > 1 {
			return "", SourceHeader, errInvalid("more than one Authorization header", nil)
		}
		scheme, tok, _ := strings.Cut(strings.TrimSpace(hs[0]), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", SourceHeader, errInvalid("the Authorization header must use the Bearer scheme", nil)
		}
		return checkLen(strings.TrimSpace(tok), SourceHeader)
	}
	for _, name := range []string{CookieName, MercureCookieName} {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return checkLen(c.Value, SourceCookie)
		}
	}
	if vs, ok := queryValues(r)[QueryParam]; ok {
		if len(vs) > 1 {
			return "", SourceQuery, errInvalid("more than one authorization query parameter", nil)
		}
		if vs[0] != "" {
			return checkLen(vs[0], SourceQuery)
		}
	}
	return "", SourceNone, nil
}

// MercureTokenFromRequest returns the request's token with the Mercure
// protocol's precedence: the Authorization header, then a query parameter
// (access_token, the current protocol's, or authorization, the 0.x one;
// not both), then the cookie named cookie (mercureAuthorization when
// empty), __Secure-mercure_access_token (the current protocol's) and
// heraldAuthorization. It applies TokenFromRequest's checks and returns
// ("", SourceNone, nil) when there is no token.
func MercureTokenFromRequest(r *http.Request, cookie string) (string, Source, error) {
	if _, ok := r.Header["Authorization"]; ok {
		return TokenFromRequest(r)
	}
	q := queryValues(r)
	if q.Has(AccessTokenParam) && q.Has(QueryParam) {
		return "", SourceQuery, errInvalid("the token is given twice, in the access_token and authorization query parameters: give one", nil)
	}
	for _, p := range []string{AccessTokenParam, QueryParam} {
		if vs, ok := q[p]; ok {
			if len(vs) > 1 {
				return "", SourceQuery, errInvalid("more than one "+p+" query parameter", nil)
			}
			if vs[0] != "" {
				return checkLen(vs[0], SourceQuery)
			}
		}
	}
	if cookie == "" {
		cookie = MercureCookieName
	}
	for _, name := range []string{cookie, MercureAccessTokenCookie, CookieName} {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return checkLen(c.Value, SourceCookie)
		}
	}
	return "", SourceNone, nil
}

func queryValues(r *http.Request) url.Values {
	if r.URL == nil {
		return nil
	}
	// Ignore the parse error: the handler reports malformed queries.
	v, _ := url.ParseQuery(r.URL.RawQuery)
	return v
}

func checkLen(tok string, src Source) (string, Source, error) {
	if tok == "" {
		return "", src, errInvalid("empty token", nil)
	}
	if len(tok) > MaxTokenLen {
		return "", src, errInvalid("token too long", nil)
	}
	return tok, src, nil
}

// sensitiveParams are query parameters whose values are replaced in logs.
var sensitiveParams = []string{QueryParam, "token", "access_token", "jwt", "id_token"}

// Redacted returns u as a string with the values of the query parameters
// that may carry credentials (authorization, token, access_token, jwt,
// id_token; any case) replaced by "REDACTED". Logs must use it, never the
// raw URL.
func Redacted(u *url.URL) string {
	if u == nil {
		return ""
	}
	if u.RawQuery == "" {
		return u.String()
	}
	// Split on "&" and ";" alike, keeping the separators, so that no
	// spelling of the query lets a credential through.
	var b strings.Builder
	changed := false
	rest := u.RawQuery
	for {
		i := strings.IndexAny(rest, "&;")
		p := rest
		if i >= 0 {
			p = rest[:i]
		}
		k, _, hasValue := strings.Cut(p, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			key = k
		}
		if hasValue && isSensitive(key) {
			b.WriteString(k + "=REDACTED")
			changed = true
		} else {
			b.WriteString(p)
		}
		if i < 0 {
			break
		}
		b.WriteByte(rest[i])
		rest = rest[i+1:]
	}
	if !changed {
		return u.String()
	}
	c := *u
	c.RawQuery = b.String()
	return c.String()
}

func isSensitive(key string) bool {
	for _, s := range sensitiveParams {
		if strings.EqualFold(key, s) {
			return true
		}
	}
	return false
}
