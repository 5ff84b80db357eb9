package config

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Streams configures the Durable Streams endpoint (/v1/stream/*): see
// docs/durable-streams.md. Streams live in a broker of their own, opened
// beside the main one with no history limits (--history-* do not apply).
type Streams struct {
	// Disable turns the endpoint off (404).
	Disable bool
	// LongPollTimeout is how long a long-poll read waits for new data
	// before it answers 204.
	LongPollTimeout time.Duration
	// MaxBody bounds the body of one create or append (413 beyond).
	MaxBody ByteSize
	// AnonymousReads lets clients without a token read streams even when
	// a subscriber key is configured (writes always follow the publish
	// rules).
	AnonymousReads bool
	// SSEMaxAge is how long an SSE read stays open: the server then ends
	// it cleanly and the client reconnects from its last offset (the
	// protocol asks for about a minute, for CDN collapsing).
	SSEMaxAge time.Duration
	// WebhookAllow lists networks (CIDRs, comma-separated) that webhook
	// subscriptions may call in addition to public addresses: private,
	// loopback, link-local, multicast and unspecified addresses are
	// refused otherwise (SSRF policy, docs/security.md).
	WebhookAllow string
	// WebhookKey is a PEM PKCS #8 Ed25519 private key file to sign
	// webhook requests with; empty: a key generated once and kept on the
	// streams broker, shared by the cluster.
	WebhookKey string
}

// WebhookAllowed returns the networks of WebhookAllow (validated).
func (c *Streams) WebhookAllowed() []netip.Prefix {
	var out []netip.Prefix
	for _, f := range strings.Split(c.WebhookAllow, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
		} else if a, err := netip.ParseAddr(f); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

func (c *Streams) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.Disable, "ds-disable", false, "turn off the Durable Streams endpoint at /v1/stream/*")
	fs.DurationVar(&c.LongPollTimeout, "ds-long-poll-timeout", 30*time.Second, "how long a Durable Streams long-poll read waits for new data before it answers 204")
	c.MaxBody = 8 << 20
	fs.Var(&c.MaxBody, "ds-max-body", "largest body of one Durable Streams create or append (413 beyond)")
	fs.DurationVar(&c.SSEMaxAge, "ds-sse-max-age", time.Minute, "how long a Durable Streams SSE read stays open before the server ends it cleanly (the client reconnects from its last offset)")
	fs.StringVar(&c.WebhookAllow, "ds-webhook-allow", "", "networks (CIDRs or addresses, comma-separated) Durable Streams webhook subscriptions may call besides public addresses, e.g. 127.0.0.0/8,::1 for a receiver on this host")
	fs.StringVar(&c.WebhookKey, "ds-webhook-key", "", "PEM PKCS #8 Ed25519 private key file that signs Durable Streams webhooks (default: a key generated once and kept on the streams broker)")
	fs.BoolVar(&c.AnonymousReads, "ds-anonymous-reads", false, "let clients without a token read Durable Streams even when a subscriber key is configured (writes still need a publisher token, or loopback without a publisher key)")
}

func (c *Streams) validate() error {
	var errs []error
	if c.LongPollTimeout <= 0 || c.SSEMaxAge <= 0 {
		errs = append(errs, fmt.Errorf("ds-long-poll-timeout, ds-sse-max-age: must be positive, got %s, %s", c.LongPollTimeout, c.SSEMaxAge))
	}
	for _, f := range strings.Split(c.WebhookAllow, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if _, err := netip.ParsePrefix(f); err != nil {
			if _, err2 := netip.ParseAddr(f); err2 != nil {
				errs = append(errs, fmt.Errorf("ds-webhook-allow: %q is neither a CIDR nor an address", f))
			}
		}
	}
	if c.MaxBody <= 0 {
		errs = append(errs, errors.New("ds-max-body: must be positive"))
	}
	return errors.Join(errs...)
}
