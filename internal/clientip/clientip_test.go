package clientip_test

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/heraldpush/herald/internal/clientip"
)

func TestIP(t *testing.T) {
	res := clientip.Resolver{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}}
	tests := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct", "198.51.100.4:5000", nil, "198.51.100.4"},
		{"untrusted peer's header ignored", "198.51.100.4:5000", []string{"127.0.0.1"}, "198.51.100.4"},
		{"trusted proxy", "10.1.2.3:80", []string{"203.0.113.9"}, "203.0.113.9"},
		{"chain of trusted proxies", "127.0.0.1:80", []string{"203.0.113.9, 10.0.0.5"}, "203.0.113.9"},
		{"forged left-most hop", "10.1.2.3:80", []string{"127.0.0.1, 203.0.113.9"}, "203.0.113.9"},
		{"several headers", "10.1.2.3:80", []string{"1.2.3.4", "203.0.113.9"}, "203.0.113.9"},
		{"garbage hop", "10.1.2.3:80", []string{"203.0.113.9, nonsense"}, "10.1.2.3"},
		{"all trusted", "10.1.2.3:80", []string{"10.9.9.9"}, "10.9.9.9"},
		{"IPv6 peer", "[2001:db8::1]:443", nil, "2001:db8::1"},
		{"mapped IPv4", "[::ffff:198.51.100.4]:1", nil, "198.51.100.4"},
		{"unparsable", "pipe", nil, "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := res.IP(r).String(); got != tt.want {
				t.Fatalf("IP = %s, want %s", got, tt.want)
			}
		})
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:1"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	if res.IsLoopback(r) {
		t.Fatal("a remote client behind a loopback proxy counted as loopback")
	}
	var none clientip.Resolver
	if !none.IsLoopback(r) {
		t.Fatal("without trusted proxies the loopback peer is the client")
	}
}
