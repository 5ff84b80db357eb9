package app

import (
	"context"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/admin"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/dashboard"
)

// devMode reports whether the server runs without authentication.
func (a *App) devMode() bool { return !a.cfg.Auth.Enabled() }

// mountOps registers the admin API and, when enabled, the dashboard: the
// admin face, which the policy guards with --admin-token (or, without it,
// lets only local, same-origin clients in).
func (a *App) mountOps(ctx context.Context, rt *access.Router) error {
	(&admin.API{Hub: a.hub}).Register(rt)
	if !a.dashboardOn() {
		return nil
	}
	a.sampler = dashboard.NewSampler(dashboard.Source{
		Hub:      a.hub,
		Registry: a.metrics.Registry,
		Broker:   config.RedactURL(a.cfg.Broker.URL),
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
	read := access.Route{Action: access.ReadMetadata, Face: access.FaceAdmin}
	rt.Handle("GET /dashboard", read, page)
	// The page's script and style hold no data: public, like every page file.
	rt.Handle("GET /dashboard/{file}", static, assets)
	rt.Handle("GET /dashboard/stream", read, a.sampler.StreamHandler())
	return nil
}
