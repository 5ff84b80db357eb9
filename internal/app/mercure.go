package app

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"

	"github.com/heraldpush/herald/internal/api"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/mercure"
)

// mountMercure registers the Mercure protocol endpoint: subscribe and
// publish at /.well-known/mercure, and the subscriptions API below it
// (docs/mercure.md).
func (a *App) mountMercure(ctx context.Context, mux *http.ServeMux) error {
	c := &a.cfg
	if c.Mercure.Disable {
		return nil
	}
	h := mercure.New(ctx, mercure.Options{
		Hub:                  a.hub,
		Verifier:             a.sec.authz.Verifier,
		AnonymousSubscribers: a.sec.anonSubscribers,
		CheckPublish:         a.mercurePublishPolicy,
		CookieName:           c.Mercure.CookieName,
		Subscriptions:        c.Mercure.Subscriptions,
		IDIndexSize:          c.Mercure.IDIndexSize,
		MaxTopics:            c.Limits.MaxTopics,
		MaxDataBytes:         int(c.Limits.MaxDataBytes),
		Retry:                c.Core.Retry,
		KeepAlive:            c.Core.KeepAlive,
		WriteTimeout:         c.Core.WriteTimeout,
		Metrics:              a.metrics,
		Logger:               a.log.With("component", "mercure"),
	})
	a.onClose(h.Close)
	mux.Handle(mercure.Path, h)
	mux.Handle(mercure.SubscriptionsPath, h)
	mux.Handle(mercure.SubscriptionsPath+"/", h)
	return nil
}

// mercurePublishPolicy applies to a Mercure publish the rules of
// publishAccess that are not about the token's claims (the Mercure handler
// checks those with URI templates): without a publisher key, loopback
// clients only; requests authorized by ambient credentials (a cookie, or
// being on loopback) must not come from a foreign page; one charge against
// the publish rate of the token's subject (or client address).
func (a *App) mercurePublishPolicy(r *http.Request, g *auth.Grant) error {
	st := a.state(r)
	if a.sec.authz.Publisher == nil {
		if !st.ip.IsValid() || !st.ip.IsLoopback() {
			return &mercure.Error{Status: http.StatusForbidden, Code: auth.CodeLoopbackOnly, Reason: reasonLoopbackOnly,
				Msg: "forbidden: no publisher key is configured, so only loopback clients may publish (development mode; see --jwt-key)"}
		}
		if err := a.checkOrigin(r); err != nil {
			return toMercureError(err)
		}
	} else if g.Source == auth.SourceCookie {
		if err := a.checkOrigin(r); err != nil {
			return toMercureError(err)
		}
	}
	identity := g.Identity
	if identity == "" {
		identity = "ip:" + st.ip.String()
	}
	if !st.rateCharged.Swap(true) {
		if ok, wait := a.sec.publishRate.Allow(identity); !ok {
			secs := max(int(math.Ceil(wait.Seconds())), 1)
			return &mercure.Error{Status: http.StatusTooManyRequests, Code: codeRateLimited, Reason: reasonPublishRate, RetryAfter: secs,
				Msg: fmt.Sprintf("too many publish requests: over %g per second (--publish-rate); retry in %d s", a.cfg.HTTP.PublishRate, secs)}
		}
	}
	return nil
}

func toMercureError(err error) error {
	var se *api.StatusError
	if errors.As(err, &se) {
		return &mercure.Error{Status: se.Status, Code: se.Code, Msg: se.Msg, RetryAfter: se.RetryAfter, Reason: se.Reason}
	}
	return err
}
