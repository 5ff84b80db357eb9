package app

import (
	"context"
	"net/http"

	"github.com/heraldpush/herald/internal/api"
	"github.com/heraldpush/herald/internal/eventstream"
	"github.com/heraldpush/herald/internal/httpjson"
)

// mount registers every endpoint on mux. Each feature mounts its own
// endpoints in its own file.
func (a *App) mount(ctx context.Context, mux *http.ServeMux) error {
	cfg := &a.cfg
	events := &eventstream.Handler{
		Hub:          a.hub,
		Retry:        cfg.Core.Retry,
		KeepAlive:    cfg.Core.KeepAlive,
		WriteTimeout: cfg.Core.WriteTimeout,
		MaxTopics:    cfg.Limits.MaxTopics,
		Metrics:      a.metrics,
		Logger:       a.log,
		Access:       a.subscribeAccess,
	}
	mux.Handle("/events", events)
	// Streams on the lean path (hijacked HTTP/1.1 connections) are not
	// requests http.Server.Shutdown waits for: wait for them here, once
	// the hub is closed.
	a.onShutdown(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Core.ShutdownTimeout)
		defer cancel()
		_ = events.Shutdown(ctx)
	})
	mux.Handle("/publish", &api.Publisher{
		Hub:          a.hub,
		MaxDataBytes: int(cfg.Limits.MaxDataBytes),
		MaxTopics:    cfg.Limits.MaxTopics,
		MaxBatch:     cfg.Limits.MaxBatch,
		Metrics:      a.metrics,
		Logger:       a.log,
		Authorize:    a.publishAccess,
	})
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			httpjson.Error(w, http.StatusServiceUnavailable, "not ready: shutting down")
			return
		}
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ready", "broker": a.cfg.Broker.URL, "epoch": a.broker.Epoch()})
	})
	mux.Handle("GET /metrics", a.metrics.Handler())

	for _, m := range []func(context.Context, *http.ServeMux) error{
		a.mountDemo, a.mountWS, a.mountChat, a.mountMercure, a.mountOps, a.mountPages,
	} {
		if err := m(ctx, mux); err != nil {
			return err
		}
	}
	mux.HandleFunc("/", a.notFound)
	return nil
}

func (a *App) notFound(w http.ResponseWriter, r *http.Request) {
	httpjson.Errorf(w, http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
}
