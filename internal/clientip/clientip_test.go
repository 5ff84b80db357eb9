package clientip_test

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/clientip"
)

var res = clientip.Resolver{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}}

func TestResolve(t *testing.T) {
	tests := []struct {
		name, remote string
		hdr          map[string]string
		want         string // the client's address ("invalid IP": unknown)
		loopback     bool
		forwarded    bool
	}{
		{"direct", "198.51.100.4:5000", nil, "198.51.100.4", false, false},
		{"direct loopback", "127.0.0.1:5000", nil, "127.0.0.1", true, false},
		{"IPv6 loopback", "[::1]:5000", nil, "::1", true, false},
		{"untrusted peer's header ignored", "198.51.100.4:5000", map[string]string{"X-Forwarded-For": "127.0.0.1"}, "198.51.100.4", false, true},
		{"trusted proxy", "10.1.2.3:80", map[string]string{"X-Forwarded-For": "203.0.113.9"}, "203.0.113.9", false, true},
		{"chain of trusted proxies", "127.0.0.1:80", map[string]string{"X-Forwarded-For": "203.0.113.9, 10.0.0.5"}, "203.0.113.9", false, true},
		{"forged left-most hop", "10.1.2.3:80", map[string]string{"X-Forwarded-For": "127.0.0.1, 203.0.113.9"}, "203.0.113.9", false, true},
		{"all trusted", "10.1.2.3:80", map[string]string{"X-Forwarded-For": "10.9.9.9"}, "10.9.9.9", false, true},
		{"IPv6 peer", "[2001:db8::1]:443", nil, "2001:db8::1", false, false},
		{"mapped IPv4", "[::ffff:198.51.100.4]:1", nil, "198.51.100.4", false, false},
		{"unparsable peer", "pipe", nil, "invalid IP", false, false},
		// Issue 15: a hop that does not parse leaves the client unknown; it
		// never falls back to the (loopback) proxy's own address.
		{"garbage hop", "127.0.0.1:80", map[string]string{"X-Forwarded-For": "203.0.113.9, nonsense"}, "invalid IP", false, true},
		{"unknown hop", "127.0.0.1:80", map[string]string{"X-Forwarded-For": "unknown"}, "invalid IP", false, true},
		{"empty hop", "127.0.0.1:80", map[string]string{"X-Forwarded-For": ","}, "invalid IP", false, true},
		{"hop with a port", "127.0.0.1:80", map[string]string{"X-Forwarded-For": "203.0.113.7:5555"}, "203.0.113.7", false, true},
		{"bracketed IPv6 hop", "127.0.0.1:80", map[string]string{"X-Forwarded-For": "[2001:db8::1]"}, "2001:db8::1", false, true},
		{"bracketed IPv6 hop with a port", "127.0.0.1:80", map[string]string{"X-Forwarded-For": "[2001:db8::1]:443"}, "2001:db8::1", false, true},
		{"loopback hop from a trusted proxy is forwarded", "127.0.0.1:80", map[string]string{"X-Forwarded-For": "127.0.0.1"}, "127.0.0.1", false, true},
		{"untrusted local proxy", "127.0.0.1:80", map[string]string{"X-Forwarded-For": "203.0.113.9"}, "127.0.0.1", false, true},
		{"Forwarded header alone", "127.0.0.1:80", map[string]string{"Forwarded": "for=203.0.113.9"}, "127.0.0.1", false, true},
		{"X-Real-IP alone", "127.0.0.1:80", map[string]string{"X-Real-IP": "203.0.113.9"}, "127.0.0.1", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for k, v := range tt.hdr {
				r.Header.Set(k, v)
			}
			var c clientip.Client
			if tt.name == "untrusted local proxy" {
				var none clientip.Resolver
				c = none.Resolve(r)
			} else {
				c = res.Resolve(r)
			}
			if got := c.Addr.String(); got != tt.want || c.Loopback() != tt.loopback || c.Forwarded != tt.forwarded {
				t.Fatalf("Resolve = %s loopback=%v forwarded=%v, want %s %v %v", got, c.Loopback(), c.Forwarded, tt.want, tt.loopback, tt.forwarded)
			}
		})
	}
}

func TestParseHop(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7": "203.0.113.7", " 203.0.113.7 ": "203.0.113.7", "203.0.113.7:5555": "203.0.113.7",
		"[2001:db8::1]": "2001:db8::1", "[2001:db8::1]:1": "2001:db8::1", "2001:db8::1": "2001:db8::1",
		"::ffff:1.2.3.4": "1.2.3.4", "fe80::1%eth0": "fe80::1",
		"unknown": "", "": "", "_hidden": "", "[1.2.3.4]": "", "1.2.3.4:": "", "1.2.3.4:99999": "", "[::1": "",
	} {
		ip, ok := clientip.ParseHop(in)
		got := ""
		if ok {
			got = ip.String()
		}
		if got != want {
			t.Errorf("ParseHop(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzResolve: whatever X-Forwarded-For a trusted loopback proxy relays, a
// forwarded client is never taken for a local one, and its address is
// either a parsed hop or unknown — never the proxy's own.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "203.0.113.7:5555", "[2001:db8::1]", "unknown", "127.0.0.1", "1.2.3.4, 10.0.0.1", ",,", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "127.0.0.1:80"
		r.Header.Set("X-Forwarded-For", xff)
		c := res.Resolve(r)
		if c.Loopback() {
			t.Fatalf("X-Forwarded-For %q: a forwarded client counted as loopback", xff)
		}
		if !c.Forwarded {
			t.Fatalf("X-Forwarded-For %q: not marked forwarded", xff)
		}
		if c.Addr.IsValid() {
			found := false
			for _, h := range strings.Split(xff, ",") {
				if ip, ok := clientip.ParseHop(h); ok && ip == c.Addr {
					found = true
				}
			}
			if !found {
				t.Fatalf("X-Forwarded-For %q: client %s is none of its hops", xff, c.Addr)
			}
		}
	})
}
