package access

import (
	"context"
	"crypto/sha256"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/clientip"
)

// Identity is what the policy knows about a request's sender, resolved
// once per request by the middleware and kept in its context: the client
// (its address as the trusted-proxy rules resolve it, failing closed), the
// Host and Origin it came with, and, verified lazily and at most once per
// role and token, what its token grants. Its methods are safe for
// concurrent use (a WebSocket's messages are decided on the connection's
// worker goroutine).
type Identity struct {
	// Client is the client as resolved from the connection and the
	// trusted proxies' X-Forwarded-For.
	Client clientip.Client
	// Host is the name the request was addressed to (Host header, without
	// port, lower case); HostAllowed reports whether it is on the host
	// list.
	Host        string
	HostAllowed bool
	// Origin is the Origin header ("" without one); SameOrigin reports
	// that it names the request's own host and port.
	Origin     string
	SameOrigin bool
	// CrossSite reports a browser's Sec-Fetch-Site of cross-site or
	// same-site: the request was made by another site's page.
	CrossSite bool

	p *Policy
	r *http.Request // for the token lookups; the request as the middleware saw it

	mu     sync.Mutex    // guards toks, grants, charged, client
	toks   [2]tokenEntry // a request has one face, and the middleware may read it Herald's way
	ntoks  int
	grants []grantEntry
	client string // ClientString, once computed
	// charged: the request was charged against the publish rate (once
	// per request, see Policy.charge).
	charged bool

	asked    atomic.Bool // a handler asked the policy about this request
	answered atomic.Bool // an error was written through Write
}

type tokenEntry struct {
	face Face
	tok  string
	src  auth.Source
	err  error
}

type grantEntry struct {
	role auth.Role
	sum  [sha256.Size]byte // of the token: tokens are not kept twice
	g    *auth.Grant
	err  error
}

type ctxKey struct{}

// From returns the Identity the middleware stored in ctx, or nil.
func From(ctx context.Context) *Identity {
	id, _ := ctx.Value(ctxKey{}).(*Identity)
	return id
}

// ClientString returns the client's address for logs and limits:
// "unknown" when it could not be resolved.
func (id *Identity) ClientString() string {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.client == "" {
		id.client = "unknown"
		if id.Client.Addr.IsValid() {
			id.client = id.Client.Addr.String()
		}
	}
	return id.client
}

// anonymous is the grant of a request without a token (or without a key
// to verify it with). It is shared: nothing may change it.
var anonymous = &auth.Grant{Anonymous: true}

// Loopback reports whether the client is a local process talking to the
// server directly (a loopback address, not forwarded by any proxy).
func (id *Identity) Loopback() bool { return id.Client.Loopback() }

// token returns the request's token as face looks for it.
func (id *Identity) token(face Face) (string, auth.Source, error) {
	id.mu.Lock()
	defer id.mu.Unlock()
	for _, e := range id.toks[:id.ntoks] {
		if e.face == face {
			return e.tok, e.src, e.err
		}
	}
	tok, src, err := id.p.face(face).token(id.r)
	if id.ntoks < len(id.toks) {
		id.toks[id.ntoks] = tokenEntry{face, tok, src, err}
		id.ntoks++
	}
	return tok, src, err
}

// grant returns what the request's token, as face finds it, grants for
// role: an anonymous grant without a token or without a key for role, an
// *Error (401) for a token that does not verify or has expired since.
// Each token is verified at most once per role.
func (id *Identity) grant(role auth.Role, face Face) (*auth.Grant, error) {
	v := id.p.auth.Verifier(role)
	if v == nil {
		return anonymous, nil
	}
	tok, src, err := id.token(face)
	if err != nil {
		return nil, As(err)
	}
	if tok == "" {
		return anonymous, nil
	}
	sum := sha256.Sum256([]byte(tok))
	id.mu.Lock()
	var e *grantEntry
	for i := range id.grants {
		if id.grants[i].role == role && id.grants[i].sum == sum {
			e = &id.grants[i]
			break
		}
	}
	if e == nil {
		// Verified with the lock held: another goroutine asking for the
		// same grant waits instead of verifying again.
		g, err := v.Verify(id.r.Context(), tok)
		id.grants = append(id.grants, grantEntry{role: role, sum: sum, g: g, err: err})
		e = &id.grants[len(id.grants)-1]
	}
	g, err := e.g, e.err
	id.mu.Unlock()
	if err != nil {
		return nil, As(err)
	}
	if !g.Expires.IsZero() && time.Now().After(g.Expires.Add(id.p.o.Leeway)) {
		// Verified earlier in a long request (a WebSocket's messages).
		return nil, As(auth.ErrExpired())
	}
	c := *g
	c.Source = src
	return &c, nil
}

// hasToken reports whether the request carries a token as face looks for
// it (verified or not).
func (id *Identity) hasToken(face Face) bool {
	tok, _, err := id.token(face)
	return tok != "" || err != nil
}

// adminToken returns the admin token the request carries: the bearer of
// its Authorization header, or the "token" query parameter (for pages and
// EventSource). ok is false for an Authorization header of another scheme.
func (id *Identity) adminToken() (tok string, ok bool) {
	if h := id.r.Header.Get("Authorization"); h != "" {
		scheme, cred, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", false
		}
		return strings.TrimSpace(cred), true
	}
	return id.r.URL.Query().Get("token"), true
}

// owner names the sender for ownership and de-duplication: the token's
// identity, or its address without a token.
func (id *Identity) owner(g *auth.Grant) string {
	if g != nil && !g.Anonymous && g.Identity != "" {
		return g.Identity
	}
	return "addr:" + id.ClientString()
}
