package app

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/send"
	"github.com/heraldpush/herald/internal/transport/ws"
)

// mountWS registers the WebSocket transport (/ws) and client messages
// (POST /send). The browser client (/herald.js) is served with the pages.
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
		Failures:     a.metrics.Failures,
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
	// Connections taken over after the handshake are not requests
	// http.Server.Shutdown waits for: end them here (a closed hub ends
	// their subscriptions: they close with 1001).
	a.onShutdown(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Core.ShutdownTimeout)
		defer cancel()
		_ = h.Shutdown(ctx)
	})
	a.onClose(h.Close)
	// The policy checks a WebSocket page's Origin (its own origin, the
	// exact --cors-origins, --ws-origin patterns): a browser sends cookies
	// with every handshake and WebSocket has no CORS.
	rt.Handle("/ws", access.Route{Action: access.Subscribe, Face: access.FaceWS, Topics: true}, h)
	rt.Handle("/send", access.Route{Action: access.Send, Face: access.FaceSend, Topics: true}, &send.Handler{Service: svc})
	return nil
}
