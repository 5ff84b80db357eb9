package access

import (
	"net"
	"net/netip"
	"net/url"
	"path"
	"strings"
)

// hostList is the set of host names requests may be addressed to (the
// Host header): the guard against DNS rebinding, where a page of
// attacker.example has its name resolve to 127.0.0.1 and then talks to a
// local Herald as its own origin. The browser still sends
// "Host: attacker.example", which is not on the list.
type hostList struct {
	any bool
	// explicit: the operator gave the list (--allowed-hosts); it then
	// applies to every request that acts or reads a topic.
	explicit bool
	exact    map[string]bool
	patterns []string // path.Match patterns such as "*.example.com"
}

// defaultHosts are always allowed: names that resolve to the loopback
// interface by definition (RFC 6761), which a rebinding page cannot use.
var defaultHosts = []string{"localhost", "*.localhost"}

// newHostList returns the list given, or when it is empty the defaults:
// localhost names, the host of the listen address, and the given extra
// hosts (of the configured CORS and WebSocket origins). "*" allows any.
func newHostList(given []string, listen string, extra []string) *hostList {
	h := &hostList{exact: make(map[string]bool), explicit: len(given) > 0}
	list := given
	if !h.explicit {
		list = append(append([]string(nil), defaultHosts...), extra...)
		if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
			list = append(list, host)
		}
	}
	for _, e := range list {
		e = normHost(e)
		switch {
		case e == "*":
			h.any = true
		case e == "":
		case strings.ContainsAny(e, "*?["):
			h.patterns = append(h.patterns, e)
		default:
			h.exact[e] = true
		}
	}
	return h
}

// allowed reports whether host (a Host header's name, see hostName) is
// allowed. IP addresses always are: a page whose origin is an IP address
// is the server's own (rebinding needs a name). An empty Host (HTTP/1.0)
// is not a browser's: it is allowed.
func (h *hostList) allowed(host string) bool {
	if h.any || host == "" || h.exact[host] {
		return true
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return true
	}
	for _, p := range h.patterns {
		if ok, _ := path.Match(p, host); ok {
			return true
		}
	}
	return false
}

// hostName returns the name of a Host header value: without the port,
// lower case, without a trailing dot; IPv6 addresses keep no brackets.
func hostName(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return normHost(strings.Trim(h, "[]"))
}

func normHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// originHosts returns the host names of origins and origin patterns, for
// the default host list: "https://app.example.com" gives
// "app.example.com", "*.example.com" stays a pattern; "*" is left out.
func originHosts(origins []string) []string {
	var out []string
	for _, o := range origins {
		if o == "*" || o == "" {
			continue
		}
		if strings.Contains(o, "://") {
			u, err := url.Parse(o)
			if err != nil || u.Host == "" {
				continue
			}
			o = u.Host
		}
		out = append(out, hostName(o))
	}
	return out
}

// sameOrigin reports whether origin (an Origin header) names the host the
// request was sent to (host, the Host header), port included. The scheme
// is not compared: behind a TLS-terminating proxy Herald cannot know it.
func sameOrigin(origin, host string) bool {
	if origin == "" || origin == "null" {
		return false
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}

// matchOriginPattern reports whether origin matches a WebSocket origin
// pattern as coder/websocket reads one: against the origin's host, or
// against scheme://host when the pattern holds "://", case-insensitively.
func matchOriginPattern(pattern, origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	target := u.Host
	if strings.Contains(pattern, "://") {
		target = u.Scheme + "://" + u.Host
	}
	ok, _ := path.Match(strings.ToLower(pattern), strings.ToLower(target))
	return ok
}
