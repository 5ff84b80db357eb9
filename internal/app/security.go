package app

import (
	"errors"
	"net"
	"net/http"

	"github.com/heraldpush/herald/internal/eventstream"
	"github.com/heraldpush/herald/pubsub"
)

// subscribeAccess decides whether r may subscribe to topics.
// Until authorization is configured, anyone may subscribe and no one sees
// private events.
func (a *App) subscribeAccess(r *http.Request, topics []string) (eventstream.Access, error) {
	return eventstream.Access{}, nil
}

// publishAccess decides whether r may publish m.
func (a *App) publishAccess(r *http.Request, m *pubsub.Message) error {
	return nil
}

// wrap adds the middleware every request goes through.
func (a *App) wrap(h http.Handler) http.Handler { return h }

// configureServer applies TLS and HTTP/2 settings to srv.
func (a *App) configureServer(srv *http.Server) {}

// serve runs srv on ln (with TLS when configured).
func (a *App) serve(srv *http.Server, ln net.Listener) error {
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
