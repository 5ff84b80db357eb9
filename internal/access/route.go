package access

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"sync"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/reqlife"
)

// Route is a route's policy entry: what its requests do, through which
// face. Every route is registered with one (see Router.Handle).
type Route struct {
	Action Action
	Face   Face
	// Topics: the handler asks the policy itself (Decide), with the topics
	// it parsed from the request. Otherwise the Router decides before
	// calling the handler (admin and dashboard routes, pages, probes).
	Topics bool
}

// Entry is a registered route, as Router.Routes lists it.
type Entry struct {
	Pattern string
	Route   Route
}

// Registrar registers routes with their policy entries. A face mounts its
// routes through one; *Router implements it.
type Registrar interface {
	Handle(pattern string, rt Route, h http.Handler)
	HandleFunc(pattern string, rt Route, h http.HandlerFunc)
}

// Router is an http.ServeMux whose routes all carry a policy entry. It
// applies, before each handler, what the entry decides: the per-client
// concurrency limits (not for probes) and, for routes whose handler does
// not ask the policy itself, the policy's decision. Register every route
// before serving.
type Router struct {
	p   *Policy
	mux *http.ServeMux

	mu     sync.Mutex
	routes []Entry
}

// NewRouter returns a Router for p.
func NewRouter(p *Policy) *Router { return &Router{p: p, mux: http.NewServeMux()} }

// Handle registers h for pattern (http.ServeMux syntax) with its policy
// entry. A route without an action, or without a face, is a programming
// error: Handle panics, as ServeMux does for a bad pattern, so that a
// route added without a policy entry cannot start.
func (rt *Router) Handle(pattern string, route Route, h http.Handler) {
	if route.Action == 0 || route.Action > Probe || route.Face == "" {
		panic(fmt.Sprintf("access: route %q registered without a policy entry (Action and Face)", pattern))
	}
	if route.Topics && (route.Action == Public || route.Action == Probe) {
		panic(fmt.Sprintf("access: route %q: a %s route has no topics to decide on", pattern, route.Action))
	}
	rt.mu.Lock()
	rt.routes = append(rt.routes, Entry{pattern, route})
	rt.mu.Unlock()
	rt.mux.Handle(pattern, rt.wrap(pattern, route, h))
}

// HandleFunc registers a handler function (see Handle).
func (rt *Router) HandleFunc(pattern string, route Route, h http.HandlerFunc) {
	rt.Handle(pattern, route, h)
}

// Routes returns the registered routes, in registration order.
func (rt *Router) Routes() []Entry {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.routes)
}

// ServeHTTP routes r. A request other than GET or HEAD whose path is not in
// its clean form (an empty, "." or ".." segment) is refused with 400:
// http.ServeMux would answer it with a redirect to the cleaned path, which
// keeps the method (307), so that a client following it would, say,
// DELETE a subscription where it asked to DELETE one of its streams.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && unclean(r.URL.Path) {
		Write(w, r, &Error{Status: http.StatusBadRequest, Code: CodeBadPath,
			Msg: "the path has an empty, '.' or '..' segment: send it in its clean form"})
		return
	}
	rt.mux.ServeHTTP(w, r)
}

// unclean reports whether p differs from its clean form, as http.ServeMux
// cleans it (a trailing slash kept).
func unclean(p string) bool {
	if p == "" || p[0] != '/' {
		return false // the mux answers these itself
	}
	c := path.Clean(p)
	if p[len(p)-1] == '/' && c != "/" {
		c += "/"
	}
	return c != p
}

func (rt *Router) wrap(pattern string, route Route, h http.Handler) http.Handler {
	p := rt.p
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := From(r.Context())
		if id == nil || id.p != p {
			// Not through the middleware (a test mounting the router
			// alone): resolve here.
			id = p.identify(r)
			r = r.WithContext(withIdentity(r.Context(), id))
			id.r = r
		}
		if route.Action != Probe {
			release, err := p.admit(id, route)
			if err != nil {
				Write(w, r, err)
				return
			}
			// A slot is held until the request ends: when the handler
			// returns or, for a stream handed over to the lean SSE path,
			// when the stream ends (see reqlife).
			if release != nil {
				if life := reqlife.From(r.Context()); life != nil {
					life.OnEnd(release)
				} else {
					defer release()
				}
			}
		}
		if !route.Topics {
			if _, err := p.Decide(r, Query{Action: route.Action, Face: route.Face}); err != nil {
				Write(w, r, err)
				return
			}
		}
		h.ServeHTTP(w, r)
		if route.Topics && !id.asked.Load() && !id.answered.Load() {
			p.undecided.Add(1)
			p.o.Logger.Error("access: a handler answered without asking the policy", "route", pattern, "action", route.Action.String(), "face", string(route.Face))
		}
	})
}

// admit applies the per-client concurrency limits: per client address
// (--max-connections-per-ip) and per verified token subject
// (--max-connections-per-subject). The caller calls release, unless nil,
// once the request ends.
func (p *Policy) admit(id *Identity, route Route) (release func(), err error) {
	var held []func()
	defer func() {
		if err == nil && len(held) > 0 {
			release = func() {
				for _, f := range held {
					f()
				}
			}
		}
	}()
	if key, ok := p.addrKey(id); ok {
		r, ok := p.perIP.Acquire(key)
		if !ok {
			return nil, &Error{Status: http.StatusTooManyRequests, Code: CodeTooManyConnections, Reason: "max_connections_per_ip", RetryAfter: 1,
				Msg: fmt.Sprintf("too many concurrent requests from your address (limit %d, --max-connections-per-ip)", p.o.MaxPerIP)}
		}
		held = append(held, r)
	}
	if sub := p.subject(id, route); sub != "" {
		r, ok := p.perSubject.Acquire(sub)
		if !ok {
			for _, f := range held {
				f()
			}
			held = nil
			return nil, &Error{Status: http.StatusTooManyRequests, Code: CodeTooManyConnections, Reason: "max_connections_per_subject", RetryAfter: 1,
				Msg: fmt.Sprintf("too many concurrent requests for this token's subject (limit %d, --max-connections-per-subject)", p.o.MaxPerSubject)}
		}
		held = append(held, r)
	}
	return release, nil
}

// addrKey returns the key of the client's address for the per-address
// limit, and false when the client is exempt: a local process, or the
// users of a local proxy that --trusted-proxies does not name (they would
// all share one address's limit; the proxy's own limits apply). An
// unknown client address is a key of its own: it fails closed.
func (p *Policy) addrKey(id *Identity) (string, bool) {
	c := id.Client
	if p.o.MaxPerIP <= 0 || c.Loopback() || c.Forwarded && !c.TrustedPeer && c.Peer.IsLoopback() {
		return "", false
	}
	return id.ClientString(), true
}

// subject returns the identity of the request's token for the
// per-subject limit: the one the subscriber key or else the publisher key
// verifies; "" without a valid token. Only a verified subject counts: an
// unverified one could be forged to use up someone else's limit.
func (p *Policy) subject(id *Identity, route Route) string {
	if p.o.MaxPerSubject <= 0 || route.Face == FaceAdmin || !id.hasToken(route.Face) {
		return ""
	}
	for _, role := range []auth.Role{auth.RoleSubscriber, auth.RolePublisher} {
		if g, err := id.grant(role, route.Face); err == nil && !g.Anonymous {
			return g.Identity
		}
	}
	return ""
}

// Mux is what code that registers plain handlers needs (an
// *http.ServeMux has it too).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// With returns a Mux that registers every handler on reg with the policy
// entry route: for a package that registers its pages or files without
// knowing about the policy.
func With(reg Registrar, route Route) Mux { return fixed{reg, route} }

type fixed struct {
	reg   Registrar
	route Route
}

func (f fixed) Handle(pattern string, h http.Handler) { f.reg.Handle(pattern, f.route, h) }
