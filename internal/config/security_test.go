package config

import (
	"flag"
	"strings"
	"testing"
)

func TestSecurityValidation(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Server)
		err    string // "" means valid
	}{
		{"defaults", func(*Server) {}, ""},
		{"key", func(c *Server) { c.Auth.JWT.Key = "k" }, ""},
		{"key and file", func(c *Server) { c.Auth.JWT.Key, c.Auth.JWT.KeyFile = "k", "f" }, "give only one"},
		{"key and jwks", func(c *Server) { c.Auth.Subscriber.Key, c.Auth.Subscriber.JWKSURL = "k", "https://x/j" }, "--subscriber-jwt-key"},
		{"bad alg", func(c *Server) { c.Auth.JWT.Key, c.Auth.JWT.Alg = "k", "none" }, "unsupported algorithm"},
		{"alg without key", func(c *Server) { c.Auth.Publisher.Alg = "RS256" }, "no key is"},
		{"jwks over http", func(c *Server) { c.Auth.JWT.JWKSURL = "http://id.example/jwks" }, "use https"},
		{"jwks over http on loopback", func(c *Server) { c.Auth.JWT.JWKSURL = "http://127.0.0.1:9/jwks" }, ""},
		{"publisher key only", func(c *Server) { c.Auth.Publisher.Key = "k" }, "no subscriber key"},
		{"publisher key only, anonymous", func(c *Server) { c.Auth.Publisher.Key, c.Auth.AllowAnonymous = "k", true }, ""},
		{"subscriber key only", func(c *Server) { c.Auth.Subscriber.Key = "k" }, ""},
		{"tls cert without key", func(c *Server) { c.HTTP.TLSCert = "c.pem" }, "--tls-key"},
		{"h2c with tls", func(c *Server) { c.HTTP.TLSCert, c.HTTP.TLSKey, c.HTTP.H2C = "c", "k", true }, "--h2c"},
		{"cors origin with path", func(c *Server) { c.HTTP.CORSOrigins = Strings{"https://a.example/app"} }, "not an origin"},
		{"cors origin upper case", func(c *Server) { c.HTTP.CORSOrigins = Strings{"https://A.example"} }, "lower case"},
		{"cors wildcard", func(c *Server) { c.HTTP.CORSOrigins = Strings{"*", "http://localhost:3000"} }, ""},
		{"bad proxy", func(c *Server) { c.HTTP.TrustedProxies = Strings{"10.0.0.0/33"} }, "--trusted-proxies"},
		{"proxies", func(c *Server) { c.HTTP.TrustedProxies = Strings{"10.0.0.0/8", "::1", "192.0.2.4"} }, ""},
		{"negative limit", func(c *Server) { c.HTTP.MaxConnectionsPerIP = -1 }, "must not be negative"},
		{"burst 0", func(c *Server) { c.HTTP.PublishBurst = 0 }, "--publish-burst"},
		{"tiny header limit", func(c *Server) { c.HTTP.MaxHeaderBytes = 100 }, "--max-header-bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaults(t)
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.err)
			}
		})
	}
}

func TestRoleKeys(t *testing.T) {
	var a Auth
	if !a.DevMode() || a.Enabled() {
		t.Fatal("no key must be development mode")
	}
	a.JWT.Key = "generic"
	a.Subscriber.JWKSURL = "https://id.example/jwks"
	if a.PublisherKey().Key != "generic" || a.SubscriberKey().JWKSURL == "" || a.SubscriberKey().Key != "" || a.DevMode() {
		t.Fatalf("publisher %+v subscriber %+v", a.PublisherKey(), a.SubscriberKey())
	}
}

// defaults returns the configuration `herald serve` has with no flags.
func defaults(t *testing.T) Server {
	t.Helper()
	var c Server
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.Register(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	return c
}
