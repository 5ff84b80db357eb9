package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are the claims Herald reads from a token: the registered ones,
// Mercure's "mercure" claim (the 0.x protocol's grant) and the
// authorization_details claim (RFC 9396, the current protocol's grant,
// read from access tokens only: see ParseAuthorizationDetails).
type Claims struct {
	jwt.RegisteredClaims
	Mercure *MercureClaim `json:"mercure,omitempty"`
	// AuthorizationDetails is kept raw: it is validated once the
	// signature is, so that its errors can say what is wrong.
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
}

// MercureClaim is the "mercure" claim: the topic selectors the holder may
// publish to and subscribe to, and an optional payload (which the Mercure
// endpoint attaches to subscription events).
type MercureClaim struct {
	Publish   []string        `json:"publish,omitempty"`
	Subscribe []string        `json:"subscribe,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
}

// Grant is what a request may do: the result of verifying its token, or
// an anonymous grant.
type Grant struct {
	// Anonymous is true for a request without a token.
	Anonymous bool
	// Subject is the token's "sub" claim ("" if it has none).
	Subject string
	// Identity names the holder for per-client limits: "sub:<subject>", or
	// "tok:<hash of the token>" for a token without a subject.
	Identity string
	// Expires is the token's expiry; zero if it has none.
	Expires time.Time
	// Publish and Subscribe select the topics the holder may publish to and
	// subscribe to (private events included): the mercure claim's
	// selectors and the matchers of the Mercure authorization details
	// that carry the action.
	Publish   Selectors
	Subscribe Selectors
	// Details are the token's Mercure authorization details (an access
	// token's); nil for a token without.
	Details []Detail
	// Claims are the verified claims; nil when Anonymous.
	Claims *Claims
	// Source tells where the token was found.
	Source Source
}

// CanPublish reports whether the grant covers publishing to topic.
func (g *Grant) CanPublish(topic string) bool { return g != nil && g.Publish.Match(topic) }

// CanSubscribe reports whether the grant covers topic for subscribing,
// private events included.
func (g *Grant) CanSubscribe(topic string) bool { return g != nil && g.Subscribe.Match(topic) }

// VerifierOptions configure a Verifier. Give exactly one of Key and JWKS.
type VerifierOptions struct {
	// Key is an HMAC secret (HS256/384/512) or a PEM public key or
	// certificate (RS*, PS*, ES*, EdDSA).
	Key []byte
	// Alg is the one algorithm accepted; empty infers it from Key (HS256
	// for a secret, the key's own for a public key). With JWKS, empty
	// accepts every asymmetric algorithm the keys suit.
	Alg string
	// JWKS supplies keys by key id.
	JWKS *JWKS
	// Audience, if set, must be one of the token's "aud" values.
	Audience string
	// Issuer, if set, must equal the token's "iss".
	Issuer string
	// Leeway tolerates clock skew in exp, nbf and iat checks.
	Leeway time.Duration
	// Compiler compiles the selectors of the mercure claim. Default Patterns.
	Compiler Compiler
}

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	parser   *jwt.Parser
	static   *staticKey
	jwks     *JWKS
	compiler Compiler
}

// NewVerifier returns a Verifier for o.
func NewVerifier(o VerifierOptions) (*Verifier, error) {
	if (len(o.Key) == 0) == (o.JWKS == nil) {
		return nil, errors.New("auth: give exactly one of a key and a JWKS URL")
	}
	if o.Alg != "" && !ValidAlg(o.Alg) {
		return nil, fmt.Errorf("auth: unsupported algorithm %q (use HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA)", o.Alg)
	}
	v := &Verifier{jwks: o.JWKS, compiler: o.Compiler}
	if v.compiler == nil {
		v.compiler = Patterns
	}
	var algs []string
	if len(o.Key) > 0 {
		k, err := parseStaticKey(o.Key, o.Alg)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		v.static, algs = k, k.algs
	} else {
		algs = allPublic
		if o.Alg != "" {
			if contains(hmacAlgs, o.Alg) {
				return nil, fmt.Errorf("auth: %s is a shared-secret algorithm; a JWKS URL serves public keys", o.Alg)
			}
			algs = []string{o.Alg}
		}
	}
	// WithIssuedAt: a token issued in the future (beyond the leeway) is
	// refused, as docs/security.md promises.
	opts := []jwt.ParserOption{jwt.WithValidMethods(algs), jwt.WithLeeway(o.Leeway), jwt.WithStrictDecoding(), jwt.WithIssuedAt()}
	if o.Audience != "" {
		opts = append(opts, jwt.WithAudience(o.Audience))
	}
	if o.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(o.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Algorithms returns the algorithms the verifier accepts.
func (v *Verifier) Algorithms() []string {
	if v.static != nil {
		return v.static.algs
	}
	return nil
}

// Verify checks token and returns its grant, or an *Error: 401 with
// CodeTokenExpired for an expired token, CodeTokenInvalid for any other
// failure. The signature is checked before any claim, so the answer tells
// an attacker nothing about a token it did not sign.
func (v *Verifier) Verify(ctx context.Context, token string) (*Grant, error) {
	if len(token) > MaxTokenLen {
		return nil, errInvalid("token too long", nil)
	}
	claims := new(Claims)
	var typ any
	_, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		typ = t.Header["typ"]
		if v.static != nil {
			return v.static.key, nil
		}
		kid, _ := t.Header["kid"].(string)
		return v.jwks.Key(ctx, kid, t.Method.Alg())
	})
	if err != nil {
		return nil, classify(err)
	}
	g := &Grant{Claims: claims, Subject: claims.Subject}
	if claims.ExpiresAt != nil {
		g.Expires = claims.ExpiresAt.Time
	}
	if g.Subject != "" {
		g.Identity = "sub:" + g.Subject
	} else {
		sum := sha256.Sum256([]byte(token))
		g.Identity = "tok:" + hex.EncodeToString(sum[:8])
	}
	if m := claims.Mercure; m != nil {
		if g.Publish, err = CompileSelectors(v.compiler, m.Publish); err != nil {
			return nil, errInvalid("mercure.publish: "+err.Error(), err)
		}
		if g.Subscribe, err = CompileSelectors(v.compiler, m.Subscribe); err != nil {
			return nil, errInvalid("mercure.subscribe: "+err.Error(), err)
		}
	}
	if err := g.readDetails(claims, accessTokenType(typ)); err != nil {
		return nil, err
	}
	return g, nil
}

// readDetails reads the Mercure authorization details of an access token
// into g. They are honoured only in a JWT access token (header typ
// "at+jwt", RFC 9068), which must then expire (exp): a token minted for
// another purpose (an OpenID Connect ID token) must not grant through
// them. A token of another type that carries Mercure details is refused,
// so that its issuer learns why it grants nothing.
func (g *Grant) readDetails(claims *Claims, accessToken bool) error {
	details, err := ParseAuthorizationDetails(claims.AuthorizationDetails)
	if err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "[") {
			msg = ": " + msg
		}
		return errInvalid("authorization_details"+msg, err)
	}
	if len(details) == 0 {
		return nil
	}
	if !accessToken {
		return errInvalid(`authorization_details are read from access tokens only: the token's header must have "typ": "at+jwt" (RFC 9068)`, nil)
	}
	if claims.ExpiresAt == nil {
		return errInvalid(`an access token ("typ": "at+jwt") must have an expiry (exp)`, nil)
	}
	g.Details = details
	g.Publish = append(g.Publish, g.DetailSelectors(RolePublisher)...)
	g.Subscribe = append(g.Subscribe, g.DetailSelectors(RoleSubscriber)...)
	return nil
}

// classify maps a jwt error to an *Error with a message that names the
// failed check without echoing the token.
func classify(err error) *Error {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		e := ErrExpired()
		e.Err = errors.Join(ErrExpiredToken, err)
		return e
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errInvalid("malformed token (not a JWS compact serialization with JSON claims of the expected types)", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if strings.Contains(err.Error(), "signing method") {
			return errInvalid("signing algorithm not accepted", err)
		}
		return errInvalid("bad signature", err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return errInvalid("no key to verify it with", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errInvalid("not valid yet (nbf)", err)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errInvalid("issued in the future (iat)", err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return errInvalid("wrong audience (aud)", err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errInvalid("wrong issuer (iss)", err)
	}
	return errInvalid("verification failed", err)
}
