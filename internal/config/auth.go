package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Auth configures token verification and access rules.
type Auth struct {
	// JWT is the key for both publishers and subscribers; Publisher and
	// Subscriber, when set, replace it for their role.
	JWT        JWTKey
	Publisher  JWTKey
	Subscriber JWTKey
	// Audience and Issuer, if set, must match the tokens' aud and iss.
	Audience string
	Issuer   string
	// Leeway tolerates clock skew in exp/nbf checks.
	Leeway time.Duration
	// AllowAnonymous lets subscribers without a token in (public events
	// only) when a key is configured.
	AllowAnonymous bool
	// JWKSCacheTTL is how long a fetched JWKS is used before refetching.
	JWKSCacheTTL time.Duration
	// JWKSMinRefresh is the shortest interval between two fetches of a
	// JWKS caused by unknown key ids.
	JWKSMinRefresh time.Duration
}

// JWTKey is one way to verify tokens: a secret or PEM public key (inline or
// in a file), or a JWKS URL.
type JWTKey struct {
	Key     string
	KeyFile string
	Alg     string
	JWKSURL string
}

// IsSet reports whether k names a key.
func (k JWTKey) IsSet() bool { return k.Key != "" || k.KeyFile != "" || k.JWKSURL != "" }

// PublisherKey returns the key publishers' tokens are checked with.
func (c *Auth) PublisherKey() JWTKey {
	if c.Publisher.IsSet() {
		return c.Publisher
	}
	return c.JWT
}

// SubscriberKey returns the key subscribers' tokens are checked with.
func (c *Auth) SubscriberKey() JWTKey {
	if c.Subscriber.IsSet() {
		return c.Subscriber
	}
	return c.JWT
}

// DevMode reports whether no key is configured at all: anonymous
// subscribing, publishing from loopback clients only.
func (c *Auth) DevMode() bool { return !c.PublisherKey().IsSet() && !c.SubscriberKey().IsSet() }

func (k *JWTKey) register(fs *flag.FlagSet, prefix, who string) {
	fs.StringVar(&k.Key, prefix+"jwt-key", "", "key that verifies "+who+"' tokens: an HMAC secret (HS256/384/512, at least 32 bytes) or a PEM public key (RS*, PS*, ES*, EdDSA)")
	fs.StringVar(&k.KeyFile, prefix+"jwt-key-file", "", "file holding the key that verifies "+who+"' tokens (secret or PEM public key; trailing newlines of a secret are ignored)")
	fs.StringVar(&k.Alg, prefix+"jwt-alg", "", "the one signing algorithm accepted for "+who+"' tokens; empty: HS256 for a secret, the key's own for a public key, any asymmetric one for a JWKS")
	fs.StringVar(&k.JWKSURL, prefix+"jwks-url", "", "URL of a JSON Web Key Set that verifies "+who+"' tokens (https; fetched, cached and refreshed on key rotation)")
}

func (c *Auth) register(fs *flag.FlagSet) {
	c.JWT.register(fs, "", "publishers' and subscribers")
	c.Publisher.register(fs, "publisher-", "publishers")
	c.Subscriber.register(fs, "subscriber-", "subscribers")
	fs.StringVar(&c.Audience, "jwt-audience", "", "if set, tokens must carry this audience (aud)")
	fs.StringVar(&c.Issuer, "jwt-issuer", "", "if set, tokens must carry this issuer (iss)")
	fs.DurationVar(&c.Leeway, "jwt-leeway", 0, "clock skew tolerated when checking exp and nbf")
	fs.BoolVar(&c.AllowAnonymous, "allow-anonymous", false, "with a key configured, let subscribers without a token in (they get public events only)")
	fs.DurationVar(&c.JWKSCacheTTL, "jwks-cache-ttl", time.Hour, "how long a fetched JWKS is used before it is fetched again (unknown key ids refetch sooner)")
	fs.DurationVar(&c.JWKSMinRefresh, "jwks-min-refresh", 30*time.Second, "shortest interval between two JWKS fetches caused by tokens with unknown key ids (rotation; flood guard)")
}

var jwtAlgs = map[string]bool{
	"HS256": true, "HS384": true, "HS512": true, "RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true, "ES256": true, "ES384": true, "ES512": true, "EdDSA": true,
}

func (k *JWTKey) validate(prefix string) error {
	var errs []error
	n := 0
	for _, s := range []string{k.Key, k.KeyFile, k.JWKSURL} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		errs = append(errs, fmt.Errorf("--%sjwt-key, --%sjwt-key-file and --%sjwks-url: give only one", prefix, prefix, prefix))
	}
	if k.Alg != "" && !jwtAlgs[k.Alg] {
		errs = append(errs, fmt.Errorf("--%sjwt-alg: unsupported algorithm %q (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512, EdDSA)", prefix, k.Alg))
	}
	if k.Alg != "" && !k.IsSet() {
		errs = append(errs, fmt.Errorf("--%sjwt-alg is set but no key is", prefix))
	}
	if k.JWKSURL != "" {
		if err := checkJWKSURL(k.JWKSURL); err != nil {
			errs = append(errs, fmt.Errorf("--%sjwks-url: %w", prefix, err))
		}
	}
	return errors.Join(errs...)
}

// checkJWKSURL accepts https URLs, and http ones on a loopback host only:
// keys fetched in clear could be swapped on the way.
func checkJWKSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("not an absolute URL: %q", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%q: use https (plain http only for a loopback host)", s)
	}
	return fmt.Errorf("%q: use https", s)
}

func (c *Auth) validate() error {
	errs := []error{c.JWT.validate(""), c.Publisher.validate("publisher-"), c.Subscriber.validate("subscriber-")}
	if c.Leeway < 0 || c.JWKSCacheTTL <= 0 || c.JWKSMinRefresh <= 0 {
		errs = append(errs, errors.New("--jwt-leeway must not be negative, --jwks-cache-ttl and --jwks-min-refresh must be positive"))
	}
	if !c.DevMode() && !c.SubscriberKey().IsSet() && !c.AllowAnonymous {
		errs = append(errs, errors.New("a publisher key is configured but no subscriber key: set --subscriber-jwt-key (or --jwt-key, --jwks-url), or --allow-anonymous to let subscribers in without a token"))
	}
	return errors.Join(errs...)
}

// Enabled reports whether token authentication is configured (a key for
// publishers or subscribers). Without it the server runs in development
// mode.
func (c *Auth) Enabled() bool { return !c.DevMode() }
