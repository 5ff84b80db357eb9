package app

import (
	"context"
	"net/http"

	"github.com/heraldpush/herald/internal/admin"
	"github.com/heraldpush/herald/internal/dashboard"
)

// devMode reports whether the server runs without authentication.
func (a *App) devMode() bool { return !a.cfg.Auth.Enabled() }

// mountOps registers the admin API and, when enabled, the dashboard.
func (a *App) mountOps(ctx context.Context, mux *http.ServeMux) error {
	token := a.cfg.Ops.AdminToken
	(&admin.API{Hub: a.hub, Token: token}).Register(mux)
	if !a.dashboardOn() {
		return nil
	}
	a.sampler = dashboard.NewSampler(dashboard.Source{
		Hub:      a.hub,
		Registry: a.metrics.Registry,
		Broker:   redactURL(a.cfg.Broker.URL),
		Gauges:   a.dashboardGauges,
	}, 0)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.sampler.Run(ctx)
	}()
	a.onShutdown(a.sampler.Stop)
	page, assets, err := dashboard.Page(a.site())
	if err != nil {
		return err
	}
	mux.Handle("GET /dashboard", admin.Guard(token, page))
	mux.Handle("GET /dashboard/{file}", assets)
	mux.Handle("GET /dashboard/stream", admin.Guard(token, a.sampler.StreamHandler()))
	return nil
}
