package securitytest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
)

func claimsFor(sub string, subscribe []string) *auth.Claims {
	return &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Mercure:          &auth.MercureClaim{Subscribe: subscribe, Publish: subscribe},
	}
}

// TestJWKSEndToEnd runs Herald with --jwks-url against an identity
// provider's key set that rotates.
func TestJWKSEndToEnd(t *testing.T) {
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwk := func(kid string, k *rsa.PrivateKey) map[string]any {
		return map[string]any{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()), "e": "AQAB"}
	}
	keys := make(chan []map[string]any, 1)
	keys <- []map[string]any{jwk("k1", k1)}
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		set := <-keys
		keys <- set
		json.NewEncoder(w).Encode(map[string]any{"keys": set})
	}))
	defer idp.Close()
	srv := startWith(t, func(c *config.Server) {
		c.Auth.JWT.JWKSURL = idp.URL
		c.Auth.JWKSMinRefresh = 10 * time.Millisecond
	})
	sign := func(kid string, k *rsa.PrivateKey) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claimsFor("u", []string{"*"}))
		tok.Header["kid"] = kid
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	subscribe(t, srv.URL, sign("k1", k1), viaHeader, "", "a")
	mustPublish(t, srv.URL, sign("k1", k1), map[string]any{"topic": "a", "data": "x"})
	// The provider rotates to k2: a token naming it is accepted as soon as
	// --jwks-min-refresh (10ms) has passed since the last fetch, which the
	// test waits for by trying (a token naming an unknown kid refreshes).
	<-keys
	keys <- []map[string]any{jwk("k2", k2)}
	var status int
	testkit.WaitFor(t, "a token signed by the rotated-in key k2 to be accepted", func() bool {
		s, resp, _ := open(t, srv.URL, sign("k2", k2), viaCookie, "", "a")
		if s == nil {
			status = resp.StatusCode
			return false
		}
		s.Close()
		return true
	})
	if status != 0 && status != http.StatusUnauthorized {
		t.Fatalf("k2 before the refresh: %d, want 401", status)
	}
	if s, resp, _ := open(t, srv.URL, sign("k2", k1), viaHeader, "", "a"); s != nil || resp.StatusCode != 401 {
		t.Fatalf("k2 signed by k1: %d", resp.StatusCode)
	}
}

// TestPEMKeyFile runs Herald with --jwt-key-file holding an EC public key.
func TestPEMKeyFile(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	file := filepath.Join(t.TempDir(), "pub.pem")
	os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	srv := startWith(t, func(c *config.Server) { c.Auth.JWT.KeyFile = file })
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodES256, claimsFor("u", []string{"a"})).SignedString(k)
	subscribe(t, srv.URL, tok, viaQuery, "", "a")
	mustPublish(t, srv.URL, tok, map[string]any{"topic": "a", "data": "x"})
	// An HS256 token keyed with the PEM text (algorithm confusion).
	pemText, _ := os.ReadFile(file)
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claimsFor("u", []string{"*"})).SignedString(pemText)
	if status, b := publish(t, srv.URL, forged, map[string]any{"topic": "a", "data": "x"}); status != 401 {
		t.Fatalf("algorithm confusion: %d %s", status, b)
	}
}
