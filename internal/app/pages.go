package app

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/webui"
	"github.com/heraldpush/herald/web"
)

// site lists the pages this server serves, for the header every page
// shows: a page turned off is not linked.
func (a *App) site() webui.Site {
	var pages []webui.Page
	if a.cfg.Demo.Enabled {
		pages = append(pages, webui.Demo)
	}
	if a.cfg.Chat.Enabled {
		pages = append(pages, webui.Chat)
	}
	pages = append(pages, webui.Hybrid)
	if a.dashboardOn() {
		pages = append(pages, webui.Dashboard)
	}
	return webui.NewSite(pages...)
}

// dashboardOn reports whether the dashboard is served: with --dashboard, or
// in development mode.
func (a *App) dashboardOn() bool { return a.cfg.Ops.Dashboard || a.devMode() }

// mountPages registers what the pages share (GET /ui/{file}, GET
// /favicon.ico), the browser client (GET /herald.js, /herald.d.ts) and its
// example page (GET /hybrid, /hybrid.js, /hybrid.css).
func (a *App) mountPages(ctx context.Context, rt *access.Router) error {
	mux := access.With(rt, static)
	if err := webui.Register(mux); err != nil {
		return err
	}
	for path, name := range map[string]string{
		"/herald.js": "herald.js", "/herald.d.ts": "herald.d.ts",
		"/hybrid": "hybrid.html", "/hybrid.js": "hybrid.js", "/hybrid.css": "hybrid.css"} {
		body, err := fs.ReadFile(web.Herald, name)
		if err != nil {
			return fmt.Errorf("web: %w", err)
		}
		if name == "hybrid.html" {
			if body, err = a.site().Render(body, webui.Hybrid); err != nil {
				return err
			}
		}
		mux.Handle("GET "+path, webui.File(name, body))
	}
	return nil
}
