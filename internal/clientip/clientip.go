// Package clientip finds the address of the client behind a request,
// trusting X-Forwarded-For only from configured reverse proxies, and
// failing closed: a request that came through a proxy is never taken for
// the proxy's own (loopback) client.
package clientip

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds a request's client. The zero value trusts no proxy: the
// client is the peer of the connection. It is safe for concurrent use once
// built.
type Resolver struct {
	// Trusted are the proxies whose X-Forwarded-For is believed.
	Trusted []netip.Prefix
}

// Client is what a Resolver learns about a request's client.
type Client struct {
	// Addr is the client's address; the zero Addr when it cannot be known
	// (an unreadable RemoteAddr, or an X-Forwarded-For hop written by a
	// trusted proxy that does not parse).
	Addr netip.Addr
	// Peer is the address of the connection's peer (zero if unreadable).
	Peer netip.Addr
	// Forwarded reports that the request came through a proxy: it carries
	// X-Forwarded-For, Forwarded or X-Real-IP, whoever the peer is. A
	// forwarded client is remote, even when the proxy is on loopback.
	Forwarded bool
	// TrustedPeer reports that the peer is one of the trusted proxies.
	TrustedPeer bool
}

// Loopback reports whether the client is a local process talking to the
// server directly: a loopback address, and not forwarded by any proxy.
func (c Client) Loopback() bool {
	return !c.Forwarded && c.Addr.IsValid() && c.Addr.IsLoopback()
}

// Resolve returns r's client. When the peer is a trusted proxy, the client
// is the right-most address of X-Forwarded-For that is not itself a
// trusted proxy (a left-most address could be written by the client; the
// right-most untrusted one was written by the first proxy Herald trusts).
// A hop that does not parse ends the walk with an unknown client: it never
// falls back to the proxy's own address. A hop may be an IP, "IP:port",
// "[IPv6]" or "[IPv6]:port" (some proxies write ports). Without a trusted
// peer the headers are not believed, but they still mark the request as
// forwarded.
func (res *Resolver) Resolve(r *http.Request) Client {
	peer := parse(r.RemoteAddr)
	h := r.Header
	xff := h.Values("X-Forwarded-For")
	c := Client{Addr: peer, Peer: peer, TrustedPeer: res.trusted(peer)}
	c.Forwarded = len(xff) > 0 || len(h.Values("Forwarded")) > 0 || len(h.Values("X-Real-Ip")) > 0
	if !c.TrustedPeer || len(xff) == 0 {
		return c
	}
	hops := forwardedFor(xff)
	for i := len(hops) - 1; i >= 0; i-- {
		ip, ok := ParseHop(hops[i])
		if !ok {
			// A hop we cannot read: the client is unknown, not the proxy.
			c.Addr = netip.Addr{}
			return c
		}
		c.Addr = ip
		if !res.trusted(ip) {
			return c
		}
	}
	return c
}

// IP returns the client's address (see Resolve); the zero Addr when it is
// unknown.
func (res *Resolver) IP(r *http.Request) netip.Addr { return res.Resolve(r).Addr }

// ParseHop parses one X-Forwarded-For hop: an IP address, "IP:port",
// "[IPv6]" or "[IPv6]:port", with surrounding white space. Zones are
// dropped and IPv4-mapped addresses unmapped.
func ParseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return netip.Addr{}, false
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		return clean(ip), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return clean(ap.Addr()), true
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if ip, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && ip.Is6() {
			return clean(ip), true
		}
	}
	return netip.Addr{}, false
}

func clean(ip netip.Addr) netip.Addr { return ip.Unmap().WithZone("") }

func (res *Resolver) trusted(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range res.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func forwardedFor(values []string) []string {
	var out []string
	for _, v := range values {
		out = append(out, strings.Split(v, ",")...)
	}
	return out
}

func parse(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return clean(ip)
}
