package app

import (
	"context"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/mercure"
)

// mountMercure registers the Mercure protocol endpoint: subscribe and
// publish at /.well-known/mercure, and the subscriptions API below it
// (docs/mercure.md).
func (a *App) mountMercure(ctx context.Context, rt *access.Router) error {
	c := &a.cfg
	if c.Mercure.Disable {
		return nil
	}
	// Mercure reads tokens its own way (precedence, cookie name, URI
	// templates, "a valid token reads public updates"): the policy
	// applies those rules on this face only.
	a.sec.policy.SetFace(access.FaceMercure, mercure.FaceRules(c.Mercure.CookieName))
	h := mercure.New(ctx, mercure.Options{
		Hub:           a.hub,
		Access:        a.sec.policy,
		Subscriptions: c.Mercure.Subscriptions,
		IDIndexSize:   c.Mercure.IDIndexSize,
		MaxTopics:     c.Limits.MaxTopics,
		MaxDataBytes:  int(c.Limits.MaxDataBytes),
		Stream:        a.sse,
		Metrics:       a.metrics,
		Logger:        a.log.With("component", "mercure"),
	})
	a.onClose(h.Close)
	face := func(action access.Action, topics bool) access.Route {
		return access.Route{Action: action, Face: access.FaceMercure, Topics: topics}
	}
	rt.Handle("GET "+mercure.Path, face(access.Subscribe, true), h)
	rt.Handle("POST "+mercure.Path, face(access.Publish, true), h)
	rt.Handle(mercure.Path, face(access.Public, false), h) // 405
	rt.Handle(mercure.SubscriptionsPath, face(access.ReadMetadata, true), h)
	rt.Handle(mercure.SubscriptionsPath+"/", face(access.ReadMetadata, true), h)
	return nil
}
