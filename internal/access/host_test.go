package access

import (
	"net/netip"
	"strings"
	"testing"
)

func TestHostName(t *testing.T) {
	for in, want := range map[string]string{
		"localhost:8080": "localhost", "LOCALHOST": "localhost", "localhost.:1": "localhost", "[::1]:8080": "::1",
		"[::1]": "::1", "127.0.0.1:80": "127.0.0.1", "Push.Example.COM": "push.example.com", "": "",
	} {
		if got := hostName(in); got != want {
			t.Errorf("hostName(%q) = %q, want %q", in, got, want)
		}
	}
	h := newHostList(nil, ":8080", originHosts([]string{"https://app.example.com:8443", "*.example.org", "https://*.example.net", "*"}))
	for host, want := range map[string]bool{
		"localhost": true, "a.localhost": true, "127.0.0.1": true, "::1": true, "192.0.2.7": true, "": true,
		"app.example.com": true, "x.example.org": true, "a.b.example.org": true, "x.example.net": true,
		"attacker.example": false, "localhost.attacker.example": false, "example.org": false, "app.example.com.evil": false,
	} {
		if got := h.allowed(host); got != want {
			t.Errorf("allowed(%q) = %v, want %v", host, got, want)
		}
	}
	if !newHostList([]string{"*"}, "", nil).allowed("anything.example") {
		t.Error(`"*" does not allow every host`)
	}
	if newHostList([]string{"push.example.com"}, "", nil).allowed("localhost.attacker.example") {
		t.Error("an explicit list allows another name")
	}
}

// FuzzHostName: whatever Host a request carries, the default host list
// allows only names that cannot be rebound: localhost names and IP
// addresses (and an empty Host, which no browser sends).
func FuzzHostName(f *testing.F) {
	for _, s := range []string{"localhost:8080", "attacker.example:8080", "[::1]:80", "127.0.0.1", "a.localhost.", "LOCALHOST.", "[fe80::1%25eth0]:1", "1.2.3.4.nip.io", "0x7f.1"} {
		f.Add(s)
	}
	h := newHostList(nil, ":8080", nil)
	f.Fuzz(func(t *testing.T, hostport string) {
		name := hostName(hostport)
		if !h.allowed(name) {
			return
		}
		_, ipErr := netip.ParseAddr(name)
		if name != "" && ipErr != nil && name != "localhost" && !strings.HasSuffix(name, ".localhost") {
			t.Fatalf("Host %q (name %q) is allowed by default", hostport, name)
		}
	})
}

func TestSameOrigin(t *testing.T) {
	for _, tc := range []struct {
		origin, host string
		want         bool
	}{
		{"http://localhost:8080", "localhost:8080", true},
		{"https://LOCALHOST:8080", "localhost:8080", true},
		{"http://localhost:3000", "localhost:8080", false},
		{"http://localhost", "localhost:8080", false},
		{"null", "localhost:8080", false},
		{"", "localhost:8080", false},
		{"http://evil.example", "evil.example", true},
		{"::", "localhost", false},
	} {
		if got := sameOrigin(tc.origin, tc.host); got != tc.want {
			t.Errorf("sameOrigin(%q, %q) = %v, want %v", tc.origin, tc.host, got, tc.want)
		}
	}
}
