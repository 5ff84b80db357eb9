package dssub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// URLPolicy decides which webhook URLs may be called: http or https, on
// a host whose addresses are public unicast ones, or in Allow. It is
// applied when a subscription is created (to an address given literally)
// and again when a delivery dials (to every address the host resolves
// to, and the checked address is the one dialled: a DNS answer that
// changes between the check and the dial cannot point it elsewhere).
type URLPolicy struct {
	// Allow lists networks allowed in addition to public addresses (e.g.
	// 127.0.0.0/8 for a receiver on the same host, in development).
	Allow []netip.Prefix
	// Resolver resolves host names; nil: net.DefaultResolver.
	Resolver *net.Resolver
}

// errRejected wraps the reasons a URL or an address is refused.
var errRejected = errors.New("webhook URL rejected")

// sharedNet is 100.64.0.0/10 (RFC 6598, carrier-grade NAT), and other
// special-purpose IPv4 blocks that are not public destinations.
var special = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("fec0::/10"), // site-local (deprecated, still routed inside some networks)
	netip.MustParsePrefix("100::/64"),  // discard-only
}

// Prefixes of IPv6 addresses that carry an IPv4 address a gateway
// forwards to: NAT64 (RFC 6052, the IPv4 address in the last 32 bits) and
// 6to4 (RFC 3056, in bits 16 to 47). Such an address is judged as the
// IPv4 address it carries too.
var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// embedded returns the IPv4 address a NAT64 or 6to4 address carries.
func embedded(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// allowed reports whether a is an address a webhook may be delivered to.
func (p *URLPolicy) allowed(a netip.Addr) bool {
	// Without its zone: a zoned address is contained in no prefix.
	a = a.Unmap().WithZone("")
	for _, n := range p.Allow {
		if n.Contains(a) {
			return true
		}
	}
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, n := range special {
		if n.Contains(a) {
			return false
		}
	}
	if v4, ok := embedded(a); ok {
		return p.allowed(v4)
	}
	return true
}

// Check checks a webhook URL as a subscription's create does: its form,
// its scheme, and its host when that is an address.
func (p *URLPolicy) Check(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%w: webhook.url must be an absolute http or https URL", errRejected)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: webhook.url must use http or https, not %q", errRejected, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: webhook.url must not carry credentials", errRejected)
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil && !p.allowed(a) {
		return fmt.Errorf("%w: webhook.url's address %s is private, loopback, link-local, multicast or unspecified (see --ds-webhook-allow)", errRejected, a)
	}
	if _, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err != nil && numericHost(host) {
		// 0177.0.0.1, 2130706433, 0x7f.1: IPv4 in forms some resolvers
		// read (as inet_aton does) and others look up as names.
		return fmt.Errorf("%w: webhook.url's host %q ends in a number but is not an IP address in its usual form", errRejected, host)
	}
	if name := strings.TrimSuffix(strings.ToLower(host), "."); name == "localhost" || strings.HasSuffix(name, ".localhost") {
		if !p.allowed(netip.MustParseAddr("127.0.0.1")) {
			return fmt.Errorf("%w: webhook.url's host is loopback (see --ds-webhook-allow)", errRejected)
		}
	}
	return nil
}

// numericHost reports whether host's last label is a number (decimal,
// octal or 0x hexadecimal), as the URL standard reads an IPv4 address.
func numericHost(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	digits := "0123456789"
	if l := strings.ToLower(last); strings.HasPrefix(l, "0x") {
		last, digits = l[2:], "0123456789abcdef"
	}
	return strings.Trim(last, digits) == ""
}

// DialContext resolves addr's host, checks every address it resolves to
// and dials the first that may be dialled: the http.Transport's dialer of
// webhook deliveries.
func (p *URLPolicy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	res := p.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	addrs, err := res.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	var lastErr error = fmt.Errorf("%w: %s resolves to no address", errRejected, host)
	for _, a := range addrs {
		if !p.allowed(a) {
			lastErr = fmt.Errorf("%w: %s resolves to %s, a private, loopback, link-local, multicast or unspecified address (see --ds-webhook-allow)", errRejected, host, a.Unmap())
			continue
		}
		c, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}
