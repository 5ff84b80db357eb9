package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldpush/herald/internal/send"
	"github.com/heraldpush/herald/internal/transport/ws"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/web"
)

// mountWS registers the WebSocket transport (/ws), client messages
// (POST /send), the browser client (/herald.js, /herald.d.ts) and the hybrid
// example page (/hybrid).
func (a *App) mountWS(ctx context.Context, mux *http.ServeMux) error {
	cfg := &a.cfg
	messages := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_client_messages_total",
		Help: "Client messages (WebSocket send frames and POST /send), by transport (ws, http) and result: delivered, duplicate (a retry answered from the dedupe window), rejected (4xx) or failed (5xx: the client retries).",
	}, []string{"transport", "result"})
	if err := a.metrics.Registry.Register(messages); err != nil {
		return fmt.Errorf("ws: register metrics: %w", err)
	}
	svc := &send.Service{
		Hub:          a.hub,
		Dedupe:       send.NewDedupe(cfg.WS.SendDedupeWindow, cfg.WS.SendDedupeSize),
		Authorize:    a.sendAccess,
		MaxDataBytes: int(cfg.Limits.MaxDataBytes),
		Observe:      func(transport, result string) { messages.WithLabelValues(transport, result).Inc() },
		Failures:     a.metrics.Failures,
		Logger:       a.log.With("component", "send"),
	}
	if cfg.WS.SendWebhook != "" {
		svc.Webhook = &send.Webhook{URL: cfg.WS.SendWebhook, Timeout: cfg.WS.SendWebhookTimeout}
	}
	// Pages of the origins CORS lets in may open WebSockets too. "*" does
	// not count: a browser sends cookies with every WebSocket handshake, so
	// any origin would be every site acting with the user's cookies.
	origins := append([]string(nil), cfg.WS.Origins...)
	for _, o := range cfg.HTTP.CORSOrigins {
		if o != "*" {
			origins = append(origins, strings.TrimRight(o, "/"))
		}
	}
	maxFrame := int64(cfg.WS.MaxFrameBytes)
	if maxFrame == 0 {
		maxFrame = 2*int64(cfg.Limits.MaxDataBytes) + 64<<10
	}
	h := &ws.Handler{
		Hub:            a.hub,
		Send:           svc,
		MaxTopics:      cfg.Limits.MaxTopics,
		PingInterval:   cfg.WS.PingInterval,
		PingTimeout:    cfg.WS.PingTimeout,
		WriteTimeout:   cfg.Core.WriteTimeout,
		ResumeTimeout:  cfg.WS.ResumeTimeout,
		MaxFrameBytes:  maxFrame,
		OriginPatterns: origins,
		Disabled:       cfg.WS.Disable,
		Metrics:        a.metrics,
		Logger:         a.log.With("component", "ws"),
		Access:         a.subscribeAccess,
	}
	a.onClose(h.Close)
	mux.Handle("/ws", h)
	mux.Handle("/send", &send.Handler{Service: svc})

	for path, file := range map[string]struct{ name, ctype string }{
		"/herald.js":   {"herald.js", "text/javascript; charset=utf-8"},
		"/herald.d.ts": {"herald.d.ts", "text/plain; charset=utf-8"},
		"/hybrid":      {"hybrid.html", "text/html; charset=utf-8"},
		"/hybrid.js":   {"hybrid.js", "text/javascript; charset=utf-8"},
		"/hybrid.css":  {"hybrid.css", "text/css; charset=utf-8"},
	} {
		hf, err := webFile(web.Herald, file.name, file.ctype)
		if err != nil {
			return err
		}
		mux.Handle("GET "+path, hf)
	}
	return nil
}

// sendAccess decides whether the client that made r may publish m, its
// message, to m's topic. A client message is a publish, so the publish
// policy decides: in development mode (no key configured) that lets local
// clients send; with keys, the client needs a token that may publish to the
// topic.
func (a *App) sendAccess(r *http.Request, m *pubsub.Message) error {
	return a.publishAccess(r, m)
}

// webFile serves one embedded file with its content type and an ETag, so
// that browsers revalidate it cheaply.
func webFile(fsys fs.FS, name, ctype string) (http.Handler, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	sum := sha256.Sum256(b)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", ctype)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		h.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
	}), nil
}
