package config

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"
)

// WS configures the WebSocket transport (GET /ws) and client-to-server
// messages (WebSocket "send" frames and POST /send).
type WS struct {
	// Disable refuses every WebSocket upgrade (403), so clients use SSE.
	Disable bool
	// PingInterval is how often the server pings an open WebSocket.
	PingInterval time.Duration
	// PingTimeout is how long a pong may take before the connection is
	// taken for dead and closed.
	PingTimeout time.Duration
	// ResumeTimeout bounds the wait for the first "resume" frame of a
	// connection opened with resume=frame.
	ResumeTimeout time.Duration
	// MaxFrameBytes bounds one client frame; 0 means max-data-bytes + 64 KiB.
	MaxFrameBytes ByteSize
	// Origins lists the cross-origin hosts allowed to open a WebSocket
	// (patterns as in path.Match, e.g. "*.example.com"); the server's own
	// host is always allowed.
	Origins Strings

	// SendWebhook, if set, is the application backend that receives every
	// client message as an HTTP POST.
	SendWebhook string
	// SendWebhookTimeout bounds one webhook request.
	SendWebhookTimeout time.Duration
	// SendDedupeWindow is how long a (client, message id) pair is
	// remembered, so that a retried message is delivered once.
	SendDedupeWindow time.Duration
	// SendDedupeSize bounds the number of remembered message ids.
	SendDedupeSize int
}

func (c *WS) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.Disable, "ws-disable", false, "refuse WebSocket upgrades on /ws (403) so that clients fall back to SSE; for SSE-only deployments and for testing fallback")
	fs.DurationVar(&c.PingInterval, "ws-ping-interval", 25*time.Second, "how long a WebSocket may go without a write before the server pings it")
	fs.DurationVar(&c.PingTimeout, "ws-ping-timeout", 10*time.Second, "how long a WebSocket pong may take before the connection is closed as dead")
	fs.DurationVar(&c.ResumeTimeout, "ws-resume-timeout", 10*time.Second, "how long /ws?resume=frame waits for the client's first \"resume\" frame")
	fs.Var(&c.MaxFrameBytes, "ws-max-frame-bytes", "largest WebSocket frame accepted from a client (0: max-data-bytes + 64KiB)")
	fs.Var(&c.Origins, "ws-origin", "cross-origin host pattern allowed to open a WebSocket, e.g. app.example.com or *.example.com (repeatable; the server's own host and the exact --cors-origins are always allowed)")

	fs.StringVar(&c.SendWebhook, "send-webhook", "", "URL of the application backend that receives every client message (WebSocket \"send\" frame or POST /send) as a JSON POST")
	fs.DurationVar(&c.SendWebhookTimeout, "send-webhook-timeout", 5*time.Second, "timeout of one --send-webhook request")
	fs.DurationVar(&c.SendDedupeWindow, "send-dedupe-window", 10*time.Minute, "how long a client's message id is remembered so that a retried message is delivered once")
	fs.IntVar(&c.SendDedupeSize, "send-dedupe-size", 100000, "most message ids remembered for deduplication (the oldest are forgotten first)")
}

func (c *WS) validate() error {
	var errs []error
	positive := map[string]time.Duration{
		"ws-ping-interval": c.PingInterval, "ws-ping-timeout": c.PingTimeout, "ws-resume-timeout": c.ResumeTimeout,
		"send-webhook-timeout": c.SendWebhookTimeout, "send-dedupe-window": c.SendDedupeWindow,
	}
	for _, name := range sortedKeys(positive) {
		if positive[name] <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", name, positive[name]))
		}
	}
	if c.SendDedupeSize <= 0 {
		errs = append(errs, fmt.Errorf("send-dedupe-size: must be positive, got %d", c.SendDedupeSize))
	}
	if c.MaxFrameBytes < 0 {
		errs = append(errs, errors.New("ws-max-frame-bytes: must not be negative"))
	}
	if c.SendWebhook != "" {
		u, err := url.Parse(c.SendWebhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("send-webhook: %q is not an http:// or https:// URL", RedactURL(c.SendWebhook)))
		}
	}
	return errors.Join(errs...)
}
