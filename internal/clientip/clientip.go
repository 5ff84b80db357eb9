// Package clientip finds the address of the client behind a request,
// trusting X-Forwarded-For only from configured reverse proxies.
package clientip

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds a request's client address. The zero value trusts no
// proxy: the client is the peer of the connection. It is safe for
// concurrent use once built.
type Resolver struct {
	// Trusted are the proxies whose X-Forwarded-For is believed.
	Trusted []netip.Prefix
}

// IP returns the client's address: the connection's peer or, when the peer
// is a trusted proxy, the right-most address of X-Forwarded-For that is not
// itself a trusted proxy. A left-most address could be written by the
// client; the right-most untrusted one was written by the first proxy
// Herald trusts. It returns the zero Addr when RemoteAddr is unparsable.
func (res *Resolver) IP(r *http.Request) netip.Addr {
	peer := parse(r.RemoteAddr)
	if !res.trusted(peer) {
		return peer
	}
	hops := forwardedFor(r.Header.Values("X-Forwarded-For"))
	for i := len(hops) - 1; i >= 0; i-- {
		ip, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			// A hop we cannot read: stop believing the chain here.
			return peer
		}
		ip = ip.Unmap()
		if !res.trusted(ip) {
			return ip
		}
		peer = ip
	}
	return peer
}

// IsLoopback reports whether the request's client (see IP) is on the
// loopback interface.
func (res *Resolver) IsLoopback(r *http.Request) bool {
	ip := res.IP(r)
	return ip.IsValid() && ip.IsLoopback()
}

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
	return ip.Unmap().WithZone("")
}
