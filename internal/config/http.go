package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// HTTP configures TLS, HTTP/2, CORS and connection limits.
type HTTP struct {
	ReadHeaderTimeout time.Duration
	// ReadBodyTimeout bounds the time to receive a request's body.
	ReadBodyTimeout time.Duration
	IdleTimeout     time.Duration
	// MaxHeaderBytes bounds a request's line and headers (431 beyond).
	MaxHeaderBytes ByteSize

	// CORSOrigins are the origins browsers may call Herald from ("*": any,
	// without credentials).
	CORSOrigins Strings

	TLSCert string
	TLSKey  string
	// H2C serves HTTP/2 without TLS (prior knowledge), for proxies.
	H2C bool

	// TrustedProxies are the addresses (IPs or CIDRs) whose
	// X-Forwarded-For header names the real client.
	TrustedProxies Strings

	// AllowedHosts are the host names requests may be addressed to (the
	// Host header), against DNS rebinding; empty: the defaults (localhost
	// names, IP addresses, the listen host and the hosts of the configured
	// origins); "*": any.
	AllowedHosts Strings

	// MaxConnections bounds the open TCP connections (0: no limit).
	MaxConnections int
	// MaxConnectionsPerIP and MaxConnectionsPerSubject bound the concurrent
	// requests (an open stream is one) of one client address and of one
	// token subject (0: no limit).
	MaxConnectionsPerIP      int
	MaxConnectionsPerSubject int
	// MaxIdleConnectionsPerIP bounds the open TCP connections of one peer
	// address that are not serving a request (0: no limit); trusted
	// proxies are exempt.
	MaxIdleConnectionsPerIP int
	// PublishRate is the sustained publish requests per second allowed per
	// token subject (or client address without a token); PublishBurst the
	// burst. 0 rate: no limit.
	PublishRate  float64
	PublishBurst int

	// LogRequests logs every request (tokens in query strings redacted).
	LogRequests bool
}

func (c *HTTP) register(fs *flag.FlagSet) {
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "time allowed to read a request's headers (slowloris guard)")
	fs.DurationVar(&c.ReadBodyTimeout, "read-body-timeout", 30*time.Second, "time allowed to receive a request's body (slow-body guard; 408 beyond); streams without a body are not affected")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 120*time.Second, "how long an idle keep-alive connection (not a stream) stays open")
	c.MaxHeaderBytes = 64 << 10
	fs.Var(&c.MaxHeaderBytes, "max-header-bytes", "largest request line plus headers accepted (431 beyond)")
	fs.Var(&c.CORSOrigins, "cors-origins", "origins allowed to call Herald from a browser, comma-separated (e.g. https://app.example.com), or * for any origin without cookies")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate file (PEM, full chain); with --tls-key serves HTTPS with HTTP/2")
	fs.StringVar(&c.TLSKey, "tls-key", "", "TLS private key file (PEM)")
	fs.BoolVar(&c.H2C, "h2c", false, "also serve cleartext HTTP/2 (prior knowledge), for a proxy that speaks HTTP/2 to Herald")
	fs.Var(&c.TrustedProxies, "trusted-proxies", "IPs or CIDRs of reverse proxies whose X-Forwarded-For names the client, comma-separated")
	fs.Var(&c.AllowedHosts, "allowed-hosts", "host names clients may address Herald by (Host header), comma-separated; *.example.com covers subdomains; * allows any (empty: localhost names, IP addresses, the --addr host and the hosts of --cors-origins and --ws-origin). Guards against DNS rebinding: see docs/security.md")
	fs.IntVar(&c.MaxConnections, "max-connections", 100000, "most open TCP connections; more are refused with 503 (0: no limit)")
	fs.IntVar(&c.MaxIdleConnectionsPerIP, "max-idle-connections-per-ip", 256, "most open TCP connections from one peer address that are not serving a request (new or idle keep-alive); more are refused with 503 (0: no limit; --trusted-proxies are exempt)")
	fs.IntVar(&c.MaxConnectionsPerIP, "max-connections-per-ip", 1000, "most concurrent requests (an open stream counts as one) from one client address; more get 429 (0: no limit)")
	fs.IntVar(&c.MaxConnectionsPerSubject, "max-connections-per-subject", 100, "most concurrent requests (an open stream counts as one) per token subject; more get 429 (0: no limit)")
	fs.Float64Var(&c.PublishRate, "publish-rate", 1000, "publish requests per second allowed per token subject (per client address without a token); more get 429 with Retry-After (0: no limit)")
	fs.IntVar(&c.PublishBurst, "publish-burst", 2000, "publish requests allowed in a burst above --publish-rate")
	fs.BoolVar(&c.LogRequests, "log-requests", true, "log every request (credentials in query strings are redacted)")
}

func (c *HTTP) validate() error {
	var errs []error
	if c.ReadHeaderTimeout <= 0 || c.ReadBodyTimeout <= 0 {
		errs = append(errs, errors.New("--read-header-timeout, --read-body-timeout: must be positive"))
	}
	if c.IdleTimeout < 0 {
		errs = append(errs, errors.New("--idle-timeout: must not be negative"))
	}
	if c.MaxHeaderBytes < 1024 || c.MaxHeaderBytes > 16<<20 {
		errs = append(errs, fmt.Errorf("--max-header-bytes: %d is out of range (1KiB to 16MiB)", c.MaxHeaderBytes))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key: give both or neither"))
	}
	if c.H2C && c.TLSCert != "" {
		errs = append(errs, errors.New("--h2c is cleartext HTTP/2; with --tls-cert HTTP/2 is on already"))
	}
	for _, o := range c.CORSOrigins {
		if err := checkOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("--cors-origins: %w", err))
		}
	}
	if _, err := ParsePrefixes(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("--trusted-proxies: %w", err))
	}
	if c.MaxConnections < 0 || c.MaxConnectionsPerIP < 0 || c.MaxConnectionsPerSubject < 0 || c.MaxIdleConnectionsPerIP < 0 {
		errs = append(errs, errors.New("--max-connections, --max-connections-per-ip, --max-connections-per-subject, --max-idle-connections-per-ip: must not be negative"))
	}
	for _, h := range c.AllowedHosts {
		if err := checkHostPattern(h); err != nil {
			errs = append(errs, fmt.Errorf("--allowed-hosts: %w", err))
		}
	}
	if c.PublishRate < 0 || c.PublishRate > 0 && c.PublishBurst < 1 {
		errs = append(errs, errors.New("--publish-rate must not be negative, and --publish-burst must be at least 1"))
	}
	return errors.Join(errs...)
}

// checkOrigin accepts "*" and origins "scheme://host[:port]".
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%q is not an origin like https://app.example.com", o)
	}
	if strings.ToLower(o) != o {
		return fmt.Errorf("%q: write origins in lower case", o)
	}
	return nil
}

// checkHostPattern accepts "*", a host name, "*.domain" and an IP address;
// no scheme, port or path.
func checkHostPattern(h string) error {
	if h == "*" {
		return nil
	}
	name := strings.TrimPrefix(h, "*.")
	if name == "" || strings.ContainsAny(name, "/:@*?#[] ") && net.ParseIP(strings.Trim(name, "[]")) == nil {
		return fmt.Errorf("%q is not a host name like push.example.com or *.example.com (no scheme, port or path)", h)
	}
	return nil
}

// ParsePrefixes parses IPs and CIDRs ("10.0.0.0/8", "127.0.0.1", "::1").
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not an IP or CIDR", s)
			}
			out = append(out, p.Masked())
			continue
		}
		ip := net.ParseIP(s)
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return nil, fmt.Errorf("%q is not an IP or CIDR", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
