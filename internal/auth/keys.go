package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// Algorithms Herald verifies, by family.
var (
	hmacAlgs  = []string{"HS256", "HS384", "HS512"}
	rsaAlgs   = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	ecAlgs    = []string{"ES256", "ES384", "ES512"}
	edAlgs    = []string{"EdDSA"}
	allPublic = append(append(append([]string{}, rsaAlgs...), ecAlgs...), edAlgs...)
)

// MinSecretLen is the shortest HMAC secret accepted, in bytes (RFC 7518
// §3.2 asks for at least the hash size; 32 bytes covers HS256).
const MinSecretLen = 32

// staticKey is a key given on the command line or in a file: an HMAC secret
// or a PEM public key (or certificate).
type staticKey struct {
	key  any      // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	algs []string // the algorithms the key may verify
}

// parseStaticKey reads material (a secret, or a PEM public key or
// certificate) and checks that alg (empty: inferred) suits it.
func parseStaticKey(material []byte, alg string) (*staticKey, error) {
	trimmed := bytes.TrimSpace(material)
	if len(trimmed) == 0 {
		return nil, errors.New("empty key")
	}
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN")) {
		if alg == "" {
			alg = "HS256"
		}
		if !contains(hmacAlgs, alg) {
			return nil, fmt.Errorf("algorithm %s needs a PEM public key, but the key is a secret (use HS256, HS384 or HS512 with a secret)", alg)
		}
		secret := material // as given: every byte counts
		if len(secret) < MinSecretLen {
			return nil, fmt.Errorf("the HMAC secret is %d bytes; use at least %d random bytes", len(secret), MinSecretLen)
		}
		return &staticKey{key: secret, algs: []string{alg}}, nil
	}
	if strings.Contains(string(trimmed), "PRIVATE KEY") {
		return nil, errors.New("the PEM block is a private key: give Herald the public key only")
	}
	var (
		key  any
		errs []error
	)
	if k, err := jwt.ParseRSAPublicKeyFromPEM(trimmed); err == nil {
		key = k
	} else if k, err2 := jwt.ParseECPublicKeyFromPEM(trimmed); err2 == nil {
		key = k
	} else if k, err3 := jwt.ParseEdPublicKeyFromPEM(trimmed); err3 == nil {
		key = k
	} else {
		errs = append(errs, err, err2, err3)
	}
	if key == nil {
		return nil, fmt.Errorf("not an RSA, EC or Ed25519 public key in PEM: %w", errors.Join(errs...))
	}
	algs, err := algsForKey(key)
	if err != nil {
		return nil, err
	}
	if alg == "" {
		return &staticKey{key: key, algs: algs[:1]}, nil
	}
	if !contains(algs, alg) {
		return nil, fmt.Errorf("algorithm %s does not suit this key (it suits %s)", alg, strings.Join(algs, ", "))
	}
	return &staticKey{key: key, algs: []string{alg}}, nil
}

// algsForKey returns the algorithms a public key can verify, the default
// first.
func algsForKey(key any) ([]string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits: use at least 2048", k.N.BitLen())
		}
		return rsaAlgs, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []string{"ES256"}, nil
		case elliptic.P384():
			return []string{"ES384"}, nil
		case elliptic.P521():
			return []string{"ES512"}, nil
		}
		return nil, errors.New("EC key on an unsupported curve (use P-256, P-384 or P-521)")
	case ed25519.PublicKey:
		return edAlgs, nil
	}
	return nil, fmt.Errorf("unsupported key type %T", key)
}

// ValidAlg reports whether alg is an algorithm Herald verifies.
func ValidAlg(alg string) bool {
	return contains(hmacAlgs, alg) || contains(allPublic, alg)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
