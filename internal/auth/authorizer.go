package auth

import (
	"context"
	"net/http"
)

// Role is what a token is checked for: publishing or subscribing.
type Role uint8

const (
	// RoleSubscriber checks a token with the subscriber key.
	RoleSubscriber Role = iota
	// RolePublisher checks a token with the publisher key.
	RolePublisher
)

func (r Role) String() string {
	if r == RolePublisher {
		return "publisher"
	}
	return "subscriber"
}

// Authorizer holds a server's verifiers: one for publishers' tokens and one
// for subscribers' (they may be the same). A nil verifier means no key is
// configured for that role. Its fields must not change once it is in use.
type Authorizer struct {
	Publisher  *Verifier
	Subscriber *Verifier
}

// Verifier returns the verifier of role, nil if none is configured.
func (a *Authorizer) Verifier(role Role) *Verifier {
	if a == nil {
		return nil
	}
	if role == RolePublisher {
		return a.Publisher
	}
	return a.Subscriber
}

// Authenticate finds r's token (see TokenFromRequest) and verifies it for
// role. A request without a token gets an anonymous grant, and so does one
// with a token when no key is configured for role (nothing can verify it,
// so it grants nothing); whether anonymous requests are acceptable is the
// caller's policy. A token that fails verification is an *Error (401), even
// where anonymous requests would pass: a client with a broken or expired
// token is told so instead of being silently downgraded.
func (a *Authorizer) Authenticate(ctx context.Context, r *http.Request, role Role) (*Grant, error) {
	v := a.Verifier(role)
	if v == nil {
		return &Grant{Anonymous: true}, nil
	}
	tok, src, err := TokenFromRequest(r)
	if err != nil {
		return nil, err
	}
	if tok == "" {
		return &Grant{Anonymous: true}, nil
	}
	g, err := v.Verify(ctx, tok)
	if err != nil {
		return nil, err
	}
	g.Source = src
	return g, nil
}

// SetCompiler makes both verifiers compile the selectors of tokens' claims
// with c (e.g. a Mercure endpoint adding URI templates). Call it before the
// Authorizer is in use.
func (a *Authorizer) SetCompiler(c Compiler) {
	for _, v := range []*Verifier{a.Publisher, a.Subscriber} {
		if v != nil {
			v.compiler = c
		}
	}
}
