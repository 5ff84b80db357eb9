package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/send"
	"github.com/heraldpush/herald/internal/transport/ws"
	"github.com/heraldpush/herald/web"
)

// mountWS registers the WebSocket transport (/ws), client messages
// (POST /send), the browser client (/herald.js, /herald.d.ts) and the hybrid
// example page (/hybrid).
func (a *App) mountWS(ctx context.Context, rt *access.Router) error {
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
		Access:       a.sec.policy,
		MaxDataBytes: int(cfg.Limits.MaxDataBytes),
		Observe:      func(transport, result string) { messages.WithLabelValues(transport, result).Inc() },
		Logger:       a.log.With("component", "send"),
	}
	if cfg.WS.SendWebhook != "" {
		svc.Webhook = &send.Webhook{URL: cfg.WS.SendWebhook, Timeout: cfg.WS.SendWebhookTimeout}
	}
	maxFrame := int64(cfg.WS.MaxFrameBytes)
	if maxFrame == 0 {
		maxFrame = 2*int64(cfg.Limits.MaxDataBytes) + 64<<10
	}
	h := &ws.Handler{
		Hub:           a.hub,
		Send:          svc,
		MaxTopics:     cfg.Limits.MaxTopics,
		PingInterval:  cfg.WS.PingInterval,
		PingTimeout:   cfg.WS.PingTimeout,
		WriteTimeout:  cfg.Core.WriteTimeout,
		ResumeTimeout: cfg.WS.ResumeTimeout,
		MaxFrameBytes: maxFrame,
		Disabled:      cfg.WS.Disable,
		Metrics:       a.metrics,
		Logger:        a.log.With("component", "ws"),
		Access:        a.sec.policy,
	}
	a.onClose(h.Close)
	// The policy checks a WebSocket page's Origin (its own origin, the
	// exact --cors-origins, --ws-origin patterns): a browser sends cookies
	// with every handshake and WebSocket has no CORS.
	rt.Handle("/ws", access.Route{Action: access.Subscribe, Face: access.FaceWS, Topics: true}, h)
	rt.Handle("/send", access.Route{Action: access.Send, Face: access.FaceSend, Topics: true}, &send.Handler{Service: svc})

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
		rt.Handle("GET "+path, static, hf)
	}
	return nil
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
