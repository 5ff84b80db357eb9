package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/config"
)

// JWKSOptions configure a JWKS. The zero value of each field is its default.
type JWKSOptions struct {
	// Client fetches the key set. Default: a client with a 10 s timeout.
	Client *http.Client
	// TTL is how long a fetched key set is used before it is fetched again.
	// Default 1 h.
	TTL time.Duration
	// MinRefresh is the shortest interval between two fetches caused by a
	// token whose key id is unknown (key rotation). Default 30 s.
	MinRefresh time.Duration
	// Logger receives fetch failures. Default slog.Default().
	Logger *slog.Logger
}

// MaxJWKSBytes bounds the size of a fetched key set.
const MaxJWKSBytes = 1 << 20

// JWKS is a cached JSON Web Key Set, fetched from a URL. It refetches the
// set when its TTL passes and, at most every MinRefresh, when a token names
// a key id it does not hold (so rotated keys are picked up at once). When a
// fetch fails, the keys it holds stay in use. All methods are safe for
// concurrent use.
type JWKS struct {
	url string
	o   JWKSOptions

	mu          sync.Mutex
	keys        map[string]jwk // by kid ("" for keys without one)
	fetched     time.Time      // last successful fetch
	lastAttempt time.Time
	inflight    chan struct{} // closed when the running fetch ends
	lastErr     error
}

type jwk struct {
	key any
	alg string // "" when the set does not say
}

// NewJWKS returns a key set fetched from url. It does not fetch yet: call
// Refresh to fetch at start, or let the first token do it.
func NewJWKS(url string, o *JWKSOptions) *JWKS {
	var opts JWKSOptions
	if o != nil {
		opts = *o
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.TTL <= 0 {
		opts.TTL = time.Hour
	}
	if opts.MinRefresh <= 0 {
		opts.MinRefresh = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &JWKS{url: url, o: opts}
}

// Refresh fetches the key set now (or waits for a fetch under way) and
// reports the fetch's error.
func (j *JWKS) Refresh(ctx context.Context) error {
	return j.fetch(ctx, true)
}

// Key returns the key of id kid for algorithm alg, fetching the set when it
// is stale or lacks kid (at most once per MinRefresh).
func (j *JWKS) Key(ctx context.Context, kid, alg string) (any, error) {
	j.mu.Lock()
	k, found := j.find(kid)
	stale := j.fetched.IsZero() || time.Since(j.fetched) > j.o.TTL
	j.mu.Unlock()
	if stale || !found {
		ferr := j.fetch(ctx, false)
		j.mu.Lock()
		k, found = j.find(kid)
		j.mu.Unlock()
		if !found && ferr != nil {
			return nil, fmt.Errorf("key set unavailable: %w", ferr)
		}
	}
	if !found {
		if kid == "" {
			return nil, errors.New("the token names no key id (kid) and the key set holds several keys")
		}
		return nil, fmt.Errorf("no key %q in the key set", kid)
	}
	if k.alg != "" && k.alg != alg {
		return nil, fmt.Errorf("key %q is for %s, not %s", kid, k.alg, alg)
	}
	algs, err := algsForKey(k.key)
	if err != nil || !contains(algs, alg) {
		return nil, fmt.Errorf("key %q cannot verify %s", kid, alg)
	}
	return k.key, nil
}

// find returns the key for kid; a token without kid gets the only key of
// the set. j.mu is held.
func (j *JWKS) find(kid string) (jwk, bool) {
	if kid == "" && len(j.keys) == 1 {
		for _, k := range j.keys {
			return k, true
		}
	}
	k, ok := j.keys[kid]
	return k, ok
}

// fetch fetches the set; a fetch already under way is joined instead. When
// force is false, no fetch starts within MinRefresh of the last attempt, so
// a flood of tokens with unknown key ids (or a key server that is down)
// cannot turn into a flood of fetches.
func (j *JWKS) fetch(ctx context.Context, force bool) error {
	j.mu.Lock()
	if ch := j.inflight; ch != nil {
		j.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.lastErr
	}
	if !force && time.Since(j.lastAttempt) < j.o.MinRefresh {
		err := j.lastErr
		j.mu.Unlock()
		return err
	}
	ch := make(chan struct{})
	j.inflight = ch
	j.lastAttempt = time.Now()
	j.mu.Unlock()

	// A fetch caused by a token outlives the request that started it, so
	// that a client hanging up does not abort it for everyone waiting; a
	// forced one (Refresh) ends with its context.
	base := ctx
	if !force {
		base = context.WithoutCancel(ctx)
	}
	fctx, cancel := context.WithTimeout(base, 10*time.Second)
	keys, err := j.download(fctx)
	cancel()

	j.mu.Lock()
	if err == nil {
		j.keys, j.fetched = keys, time.Now()
	} else {
		j.o.Logger.Warn("JWKS fetch failed; keeping the keys already known", "url", config.RedactURL(j.url), "err", err, "keys", len(j.keys))
	}
	j.lastErr = err
	j.inflight = nil
	close(ch)
	j.mu.Unlock()
	return err
}

func (j *JWKS) download(ctx context.Context) (map[string]jwk, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := j.o.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", config.RedactURL(j.url), resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > MaxJWKSBytes {
		return nil, fmt.Errorf("key set larger than %d bytes", MaxJWKSBytes)
	}
	return parseJWKS(body)
}

// rawJWK is a JSON Web Key (RFC 7517) as far as Herald reads it.
type rawJWK struct {
	Kty string   `json:"kty"`
	Kid string   `json:"kid"`
	Use string   `json:"use"`
	Alg string   `json:"alg"`
	N   string   `json:"n"`
	E   string   `json:"e"`
	Crv string   `json:"crv"`
	X   string   `json:"x"`
	Y   string   `json:"y"`
	X5c []string `json:"x5c"`
}

// parseJWKS parses a JSON Web Key Set and returns its public signing keys
// by key id. Keys it cannot use (encryption keys, symmetric keys, unknown
// types or curves) are skipped; a set with no usable key is an error.
func parseJWKS(data []byte) (map[string]jwk, error) {
	var set struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("malformed key set: %w", err)
	}
	out := make(map[string]jwk, len(set.Keys))
	var errs []error
	for i, raw := range set.Keys {
		if raw.Use != "" && raw.Use != "sig" {
			continue
		}
		key, err := raw.publicKey()
		if err != nil {
			errs = append(errs, fmt.Errorf("key %d (kid %q): %w", i, raw.Kid, err))
			continue
		}
		if raw.Alg != "" && !contains(allPublic, raw.Alg) {
			errs = append(errs, fmt.Errorf("key %d (kid %q): unsupported alg %q", i, raw.Kid, raw.Alg))
			continue
		}
		out[raw.Kid] = jwk{key: key, alg: raw.Alg}
	}
	if len(out) == 0 {
		if len(errs) == 0 {
			return nil, errors.New("the key set holds no signing key")
		}
		return nil, fmt.Errorf("no usable signing key in the key set: %w", errors.Join(errs...))
	}
	return out, nil
}

func (k *rawJWK) publicKey() (any, error) {
	if len(k.X5c) > 0 {
		der, err := base64.StdEncoding.DecodeString(k.X5c[0])
		if err != nil {
			return nil, fmt.Errorf("x5c: %w", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("x5c: %w", err)
		}
		if _, err := algsForKey(cert.PublicKey); err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	}
	var key any
	switch k.Kty {
	case "RSA":
		n, err1 := b64int(k.N)
		e, err2 := b64int(k.E)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
			return nil, errors.New("bad RSA exponent")
		}
		key = &rsa.PublicKey{N: n, E: int(e.Int64())}
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("unsupported curve %q", k.Crv)
		}
		// RFC 7518 §6.2.1.2: x and y are the full size of the curve's
		// coordinates; the point is parsed (and checked to be on the
		// curve) in its uncompressed form, 0x04 || x || y.
		size := (curve.Params().BitSize + 7) / 8
		x, err1 := base64.RawURLEncoding.DecodeString(k.X)
		y, err2 := base64.RawURLEncoding.DecodeString(k.Y)
		if err := errors.Join(err1, err2); err != nil || len(x) != size || len(y) != size {
			return nil, fmt.Errorf("bad EC coordinates: want %d bytes each in base64url", size)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("invalid EC point: %w", err)
		}
		key = pub
	case "OKP":
		if k.Crv != "Ed25519" {
			return nil, fmt.Errorf("unsupported curve %q", k.Crv)
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		key = ed25519.PublicKey(x)
	default:
		return nil, fmt.Errorf("unsupported key type %q", k.Kty)
	}
	if _, err := algsForKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, errors.New("bad base64url integer")
	}
	return new(big.Int).SetBytes(b), nil
}
