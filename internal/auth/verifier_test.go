package auth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/testkit"
)

var secret = []byte("0123456789abcdef0123456789abcdef-test-secret")

func pemPublic(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.Claims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(sub string, publish, subscribe []string, mutate func(*auth.Claims)) *auth.Claims {
	c := &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Mercure:          &auth.MercureClaim{Publish: publish, Subscribe: subscribe},
	}
	if mutate != nil {
		mutate(c)
	}
	return c
}

func mustVerifier(t testing.TB, o auth.VerifierOptions) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// noneToken builds an unsigned token with alg "none".
func noneToken(t testing.TB, c jwt.Claims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifyHMAC(t *testing.T) {
	v := mustVerifier(t, auth.VerifierOptions{Key: secret, Audience: "herald", Issuer: "https://issuer"})
	good := func(c *auth.Claims) {
		c.Audience = jwt.ClaimStrings{"herald"}
		c.Issuer = "https://issuer"
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	tests := []struct {
		name  string
		token string
		code  string // "" means valid
	}{
		{"valid", sign(t, jwt.SigningMethodHS256, secret, claims("alice", []string{"a/*"}, []string{"b"}, good), nil), ""},
		{"wrong key", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-another"), claims("alice", nil, nil, good), nil), auth.CodeTokenInvalid},
		{"other HMAC alg", sign(t, jwt.SigningMethodHS512, secret, claims("alice", nil, nil, good), nil), auth.CodeTokenInvalid},
		{"alg none", noneToken(t, claims("alice", []string{"*"}, []string{"*"}, good)), auth.CodeTokenInvalid},
		{"RS256 token", sign(t, jwt.SigningMethodRS256, rsaKey, claims("alice", nil, nil, good), nil), auth.CodeTokenInvalid},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, claims("alice", nil, nil, func(c *auth.Claims) {
			good(c)
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute))
		}), nil), auth.CodeTokenExpired},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret, claims("alice", nil, nil, func(c *auth.Claims) {
			good(c)
			c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour))
		}), nil), auth.CodeTokenInvalid},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, secret, claims("alice", nil, nil, func(c *auth.Claims) {
			good(c)
			c.Audience = jwt.ClaimStrings{"other"}
		}), nil), auth.CodeTokenInvalid},
		{"no audience", sign(t, jwt.SigningMethodHS256, secret, claims("alice", nil, nil, func(c *auth.Claims) {
			good(c)
			c.Audience = nil
		}), nil), auth.CodeTokenInvalid},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, secret, claims("alice", nil, nil, func(c *auth.Claims) {
			good(c)
			c.Issuer = "https://evil"
		}), nil), auth.CodeTokenInvalid},
		{"expired and forged", sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-another"), claims("alice", nil, nil, func(c *auth.Claims) {
			good(c)
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute))
		}), nil), auth.CodeTokenInvalid},
		{"garbage", "not.a.token", auth.CodeTokenInvalid},
		{"two parts", "abc.def", auth.CodeTokenInvalid},
		{"empty", "", auth.CodeTokenInvalid},
		{"huge", strings.Repeat("a", auth.MaxTokenLen+1), auth.CodeTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := v.Verify(context.Background(), tt.token)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if g.Subject != "alice" || g.Identity != "sub:alice" || !g.CanPublish("a/1") || g.CanPublish("b") || !g.CanSubscribe("b") || g.Expires.IsZero() {
					t.Fatalf("grant = %+v", g)
				}
				return
			}
			var ae *auth.Error
			if !errors.As(err, &ae) || ae.Code != tt.code || ae.Status != http.StatusUnauthorized {
				t.Fatalf("Verify = %v, want *auth.Error with code %s", err, tt.code)
			}
			if tt.token != "" && len(tt.token) > 10 && strings.Contains(ae.Msg, tt.token) {
				t.Fatalf("error message echoes the token")
			}
		})
	}
}

func TestVerifyMalformedClaims(t *testing.T) {
	v := mustVerifier(t, auth.VerifierOptions{Key: secret})
	for name, c := range map[string]jwt.MapClaims{
		"publish not a list":   {"mercure": map[string]any{"publish": "*"}},
		"subscribe of numbers": {"mercure": map[string]any{"subscribe": []any{1, 2}}},
		"exp a string":         {"exp": "tomorrow"},
		"empty selector":       {"mercure": map[string]any{"publish": []any{""}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, secret, c, nil))
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Verify = %v, want ErrInvalidToken", err)
			}
		})
	}
	// A token without subject gets an identity from its hash; without a
	// mercure claim it grants nothing.
	g, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(g.Identity, "tok:") || g.CanPublish("a") || g.CanSubscribe("a") || !g.Expires.IsZero() {
		t.Fatalf("grant = %+v", g)
	}
}

func TestVerifyPublicKeys(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	c := claims("bob", nil, []string{"*"}, nil)
	tests := []struct {
		name   string
		pem    []byte
		alg    string
		method jwt.SigningMethod
		key    any
	}{
		{"RS256", pemPublic(t, &rsaKey.PublicKey), "", jwt.SigningMethodRS256, rsaKey},
		{"PS384", pemPublic(t, &rsaKey.PublicKey), "PS384", jwt.SigningMethodPS384, rsaKey},
		{"ES256", pemPublic(t, &ecKey.PublicKey), "", jwt.SigningMethodES256, ecKey},
		{"ES384", pemPublic(t, &ec384.PublicKey), "ES384", jwt.SigningMethodES384, ec384},
		{"EdDSA", pemPublic(t, edPub), "", jwt.SigningMethodEdDSA, edKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustVerifier(t, auth.VerifierOptions{Key: tt.pem, Alg: tt.alg})
			if _, err := v.Verify(context.Background(), sign(t, tt.method, tt.key, c, nil)); err != nil {
				t.Fatalf("valid token refused: %v", err)
			}
			// Algorithm confusion: an HMAC token keyed with the public
			// key's PEM text must not pass.
			forged := sign(t, jwt.SigningMethodHS256, tt.pem, c, nil)
			if _, err := v.Verify(context.Background(), forged); !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("HS256 token keyed with the public key: %v, want ErrInvalidToken", err)
			}
			// A token signed by another key of the same kind.
			other := sign(t, jwt.SigningMethodHS256, secret, c, nil)
			if _, err := v.Verify(context.Background(), other); err == nil {
				t.Fatal("token of another key accepted")
			}
		})
	}
}

func TestNewVerifierRejects(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	privDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	tests := map[string]auth.VerifierOptions{
		"nothing":              {},
		"key and jwks":         {Key: secret, JWKS: auth.NewJWKS("http://127.0.0.1/", nil)},
		"short secret":         {Key: []byte("short")},
		"secret with RS256":    {Key: secret, Alg: "RS256"},
		"public key with HS":   {Key: pemPublic(t, &rsaKey.PublicKey), Alg: "HS256"},
		"EC key with ES384":    {Key: pemPublic(t, &ecKey.PublicKey), Alg: "ES384"},
		"small RSA":            {Key: pemPublic(t, &small.PublicKey)},
		"private key":          {Key: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})},
		"bad PEM":              {Key: []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")},
		"unknown alg":          {Key: secret, Alg: "none"},
		"jwks with HMAC alg":   {JWKS: auth.NewJWKS("http://127.0.0.1/", nil), Alg: "HS256"},
		"lower-case alg name":  {Key: secret, Alg: "hs256"},
		"EdDSA alg for RSA":    {Key: pemPublic(t, &rsaKey.PublicKey), Alg: "EdDSA"},
		"ES256 alg for secret": {Key: secret, Alg: "ES256"},
	}
	for name, o := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := auth.NewVerifier(o); err == nil {
				t.Fatal("NewVerifier accepted it")
			}
		})
	}
}

// jwksServer serves a key set that the test can change, counting fetches.
type jwksServer struct {
	*httptest.Server
	keys    []map[string]any
	fetches int
	fail    bool
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{}
	mu := make(chan struct{}, 1)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu <- struct{}{}
		defer func() { <-mu }()
		s.fetches++
		if s.fail {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString([]byte{1, 0, 1})}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	pt, err := k.Bytes() // 0x04, X, Y: 32 bytes each on P-256
	if err != nil {
		panic(err)
	}
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256",
		"x": base64.RawURLEncoding.EncodeToString(pt[1:33]),
		"y": base64.RawURLEncoding.EncodeToString(pt[33:])}
}

func edJWK(kid string, k ed25519.PublicKey) map[string]any {
	return map[string]any{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(k)}
}

func TestJWKSRotation(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	srv := newJWKSServer(t)
	srv.keys = []map[string]any{rsaJWK("k1", &k1.PublicKey), {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}, {"kty": "RSA", "kid": "enc", "use": "enc"}}
	jwks := auth.NewJWKS(srv.URL, &auth.JWKSOptions{MinRefresh: time.Millisecond, TTL: time.Hour})
	v := mustVerifier(t, auth.VerifierOptions{JWKS: jwks})
	ctx := context.Background()
	c := claims("carol", nil, []string{"*"}, nil)
	tok1 := sign(t, jwt.SigningMethodRS256, k1, c, map[string]any{"kid": "k1"})
	if _, err := v.Verify(ctx, tok1); err != nil {
		t.Fatalf("k1: %v", err)
	}
	if _, err := v.Verify(ctx, tok1); err != nil || srv.fetches != 1 {
		t.Fatalf("second verify: err %v, fetches %d (want 1: cached)", err, srv.fetches)
	}
	// Rotation: the issuer adds k2 and k3, then drops k1. A token naming a
	// key the verifier does not know makes it fetch the set again, at most
	// once per MinRefresh (1ms): it waits for that, not a fixed time.
	srv.keys = []map[string]any{rsaJWK("k1", &k1.PublicKey), ecJWK("k2", &k2.PublicKey), edJWK("k3", edPub)}
	tok2 := sign(t, jwt.SigningMethodES256, k2, c, map[string]any{"kid": "k2"})
	var err error
	if !testkit.Within(testkit.Timeout, func() bool { _, err = v.Verify(ctx, tok2); return err == nil }) {
		t.Fatalf("k2 after rotation: %v", err)
	}
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodEdDSA, edKey, c, map[string]any{"kid": "k3"})); err != nil {
		t.Fatalf("k3: %v", err)
	}
	srv.keys = []map[string]any{ecJWK("k2", &k2.PublicKey)}
	gone := sign(t, jwt.SigningMethodES256, k2, c, map[string]any{"kid": "gone"})
	testkit.WaitFor(t, "k1 to leave the verifier's key set (fetched again for an unknown kid)", func() bool {
		if _, err := v.Verify(ctx, gone); err == nil {
			t.Fatal("unknown kid accepted")
		}
		_, err := v.Verify(ctx, tok1)
		return err != nil
	})
	// A token that names k2 but is signed with RS256 by k1.
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, k1, c, map[string]any{"kid": "k2"})); err == nil {
		t.Fatal("key of another type accepted")
	}
	// The key server goes down: known keys keep working.
	srv.fail = true
	if err := jwks.Refresh(ctx); err == nil {
		t.Fatal("a fetch from a key server that is down succeeded")
	}
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodES256, k2, c, map[string]any{"kid": "k2"})); err != nil {
		t.Fatalf("known key refused while the key server is down: %v", err)
	}
	// The set holds one key: a token without kid uses it.
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodES256, k2, c, nil)); err != nil {
		t.Fatalf("token without kid: %v", err)
	}
}

func TestJWKSUnknownKidsDoNotFloodTheKeyServer(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv := newJWKSServer(t)
	srv.keys = []map[string]any{rsaJWK("k1", &k1.PublicKey)}
	v := mustVerifier(t, auth.VerifierOptions{JWKS: auth.NewJWKS(srv.URL, &auth.JWKSOptions{MinRefresh: time.Hour})})
	c := claims("mallory", nil, nil, nil)
	for i := 0; i < 50; i++ {
		tok := sign(t, jwt.SigningMethodRS256, k1, c, map[string]any{"kid": "unknown" + string(rune('a'+i%26))})
		if _, err := v.Verify(context.Background(), tok); err == nil {
			t.Fatal("unknown kid accepted")
		}
	}
	if srv.fetches != 1 {
		t.Fatalf("%d fetches for 50 unknown key ids, want 1", srv.fetches)
	}
}

func TestJWKSBadSets(t *testing.T) {
	srv := newJWKSServer(t)
	ctx := context.Background()
	for name, keys := range map[string][]map[string]any{
		"empty":       {},
		"only oct":    {{"kty": "oct", "k": "c2VjcmV0"}},
		"bad EC":      {{"kty": "EC", "crv": "P-256", "x": "AQ", "y": "Ag"}},
		"bad curve":   {{"kty": "EC", "crv": "P-192", "x": "AQ", "y": "Ag"}},
		"bad RSA e":   {{"kty": "RSA", "n": "AQAB", "e": ""}},
		"unknown kty": {{"kty": "XYZ"}},
	} {
		t.Run(name, func(t *testing.T) {
			srv.keys = keys
			j := auth.NewJWKS(srv.URL, nil)
			if err := j.Refresh(ctx); err == nil {
				t.Fatal("Refresh accepted the set")
			}
		})
	}
}
