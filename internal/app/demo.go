package app

import (
	"context"
	"net/http"

	"github.com/heraldpush/herald/internal/demo"
)

// mountDemo registers the built-in demo (the page at / and /sse/*) unless
// --demo=false. Its tasks stop when the App closes.
func (a *App) mountDemo(ctx context.Context, mux *http.ServeMux) error {
	cfg := &a.cfg
	if !cfg.Demo.Enabled {
		return nil
	}
	d := demo.New(demo.Options{
		Hub:          a.hub,
		TaskInterval: cfg.Demo.TaskInterval,
		MaxTasks:     cfg.Demo.MaxTasks,
		MaxDataBytes: int(cfg.Limits.MaxDataBytes),
		Retry:        cfg.Core.Retry,
		KeepAlive:    cfg.Core.KeepAlive,
		WriteTimeout: cfg.Core.WriteTimeout,
		Metrics:      a.metrics,
		Logger:       a.log.With("component", "demo"),
		Journal:      a.journal,
	})
	a.onDrain(d.Drain)
	a.onClose(d.Close)
	return d.Register(mux)
}
