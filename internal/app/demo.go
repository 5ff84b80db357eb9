package app

import (
	"context"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/demo"
)

// mountDemo registers the built-in demo (the page at / and /sse/*) unless
// --demo=false. Its tasks stop when the App closes.
func (a *App) mountDemo(ctx context.Context, rt *access.Router) error {
	cfg := &a.cfg
	if !cfg.Demo.Enabled {
		return nil
	}
	// The demo's topics: anyone reads them through any face; only the
	// demo writes them, for anyone, bounded (size, publish rate).
	a.sec.policy.Reserve(demo.Namespace())
	a.sec.policy.SetFace(access.FaceDemo, demo.FaceRules())
	d := demo.New(demo.Options{
		Hub:             a.hub,
		Access:          a.sec.policy,
		TaskInterval:    cfg.Demo.TaskInterval,
		MaxTasks:        cfg.Demo.MaxTasks,
		MaxMessageBytes: int(cfg.Demo.MaxMessageBytes),
		Stream:          a.sse,
		Site:            a.site(),
		Logger:          a.log.With("component", "demo"),
		Journal:         a.journal,
	})
	a.onDrain(d.Drain)
	a.onClose(d.Close)
	return d.Register(rt)
}
