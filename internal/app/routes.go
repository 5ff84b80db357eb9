package app

import (
	"context"
	"net/http"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/api"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/eventstream"
	"github.com/heraldpush/herald/internal/httpjson"
	"github.com/heraldpush/herald/internal/journal"
	"github.com/heraldpush/herald/internal/mercure"
)

// Policy entries shared by several routes.
var (
	probe  = access.Route{Action: access.Probe, Face: access.FaceOps}
	static = access.Route{Action: access.Public, Face: access.FaceStatic}
)

// mount registers every endpoint on rt, each with its policy entry. Each
// feature mounts its own endpoints in its own file; a feature reaches only
// the router, so no route escapes the policy.
func (a *App) mount(ctx context.Context, rt *access.Router) error {
	cfg := &a.cfg
	// The Mercure hub's topics are reserved whether or not the endpoint is
	// on: history may hold them, and no other face may read them.
	a.sec.policy.Reserve(mercure.Namespace())
	// The nodes' work journals: the server's own, never a request's (a
	// forged entry would make the next start write to the topics it
	// names).
	a.sec.policy.Reserve(access.Namespace{Name: "the work journal", Face: access.FaceInternal, Match: access.Prefix(journal.TopicPrefix), Read: access.ReachOwnFace})
	events := &eventstream.Handler{
		Hub:          a.hub,
		Retry:        cfg.Core.Retry,
		KeepAlive:    cfg.Core.KeepAlive,
		WriteTimeout: cfg.Core.WriteTimeout,
		MaxTopics:    cfg.Limits.MaxTopics,
		Metrics:      a.metrics,
		Logger:       a.log,
		Access:       a.sec.policy,
	}
	rt.Handle("/events", access.Route{Action: access.Subscribe, Face: access.FaceEvents, Topics: true}, events)
	// Streams on the lean path (hijacked HTTP/1.1 connections) are not
	// requests http.Server.Shutdown waits for: wait for them here, once
	// the hub is closed.
	a.onShutdown(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Core.ShutdownTimeout)
		defer cancel()
		_ = events.Shutdown(ctx)
	})
	rt.Handle("/publish", access.Route{Action: access.Publish, Face: access.FacePublish, Topics: true}, &api.Publisher{
		Hub:          a.hub,
		MaxDataBytes: int(cfg.Limits.MaxDataBytes),
		MaxTopics:    cfg.Limits.MaxTopics,
		MaxBatch:     cfg.Limits.MaxBatch,
		Metrics:      a.metrics,
		Logger:       a.log,
		Access:       a.sec.policy,
	})
	rt.HandleFunc("GET /ping", probe, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	})
	rt.HandleFunc("GET /healthz", probe, func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	rt.HandleFunc("GET /readyz", probe, func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			access.Write(w, r, &access.Error{Status: http.StatusServiceUnavailable, Msg: "not ready: shutting down", RetryAfter: 1})
			return
		}
		// Unauthenticated: the broker is shown without credentials.
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ready", "broker": config.RedactURL(a.cfg.Broker.URL), "epoch": a.broker.Epoch()})
	})
	rt.Handle("GET /metrics", probe, a.metrics.Handler())

	for _, m := range []func(context.Context, *access.Router) error{
		a.mountDemo, a.mountWS, a.mountChat, a.mountMercure, a.mountOps, a.mountPages,
	} {
		if err := m(ctx, rt); err != nil {
			return err
		}
	}
	rt.HandleFunc("/", static, a.notFound)
	return nil
}

func (a *App) notFound(w http.ResponseWriter, r *http.Request) {
	access.Write(w, r, access.Errorf(http.StatusNotFound, "", "no such endpoint: %s %s", r.Method, r.URL.Path))
}
