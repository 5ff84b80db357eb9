package access

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/http"

	"github.com/heraldpush/herald/internal/auth"
)

// The rules of each action. docs/security.md has them as a table; keep the
// two in step.

// subscribe: reading topics (Subscribe; Create and Cancel start here).
func (p *Policy) subscribe(id *Identity, q Query) (Decision, error) {
	fr := p.face(q.Face)
	if fr.CheckOrigin {
		if err := p.checkWSOrigin(id); err != nil {
			return Decision{}, err
		}
	}
	if err := p.gateHost(id, false); err != nil {
		return Decision{}, err
	}
	anyoneOnly := len(q.Topics) > 0
	for _, t := range q.Topics {
		ns := p.namespaceOf(t)
		switch {
		case ns == nil:
			anyoneOnly = false
		case ns.Read == ReachOwnFace && ns.Face != q.Face:
			return Decision{}, reserved(t, ns, "read")
		case ns.Read != ReachAnyone:
			anyoneOnly = false
		}
	}
	g, err := id.grant(auth.RoleSubscriber, q.Face)
	if err != nil {
		return Decision{}, err
	}
	sels, err := p.selectors(g, q.Face, auth.RoleSubscriber)
	if err != nil {
		return Decision{}, err
	}
	if g.Anonymous && !p.anon && !anyoneOnly && !fr.AnonymousReads {
		return Decision{}, As(auth.TokenRequired())
	}
	if !g.Anonymous && !p.anon {
		// With a token but without anonymous access, every topic must be
		// covered, except those anyone may read and, on a face whose
		// tokens read public events (Mercure), its ordinary topics.
		for _, t := range q.Topics {
			ns := p.namespaceOf(t)
			if ns != nil && ns.Read == ReachAnyone || fr.TokenReadsPublic && (ns == nil || ns.Face == q.Face) {
				continue
			}
			if sels.Match(t) {
				continue
			}
			// Another face's topic is covered as its own face reads the
			// token, too: whoever may read a chat reads it through any
			// face.
			if ns != nil && ns.Face != q.Face {
				if own, err := p.selectors(g, ns.Face, auth.RoleSubscriber); err == nil && own.Match(t) {
					continue
				}
			}
			return Decision{}, As(auth.Forbidden("subscribe", t))
		}
	}
	return p.decision(id, g, sels, q.Face), nil
}

// publish: writing events (Publish, Send).
func (p *Policy) publish(id *Identity, q Query) (Decision, error) {
	fr := p.face(q.Face)
	own := len(q.Topics) > 0
	for _, t := range q.Topics {
		ns := p.namespaceOf(t)
		switch {
		case ns == nil:
			own = false
		case !ns.Writable || ns.Face != q.Face:
			return Decision{}, reserved(t, ns, "publish")
		}
	}
	each := q.Action == Send // a WebSocket's messages share one request
	if q.Action == Send && len(q.Topics) == 0 {
		// A message for the application's webhook only: Herald publishes
		// nothing and the backend decides, so anyone may send one, as a
		// subscriber; a token, if any, must verify (it names the sender).
		// Charged to the publish rate, and not from another site's page
		// with ambient credentials.
		g, err := id.grant(auth.RoleSubscriber, q.Face)
		if err != nil {
			return Decision{}, err
		}
		if err := p.gateHost(id, false); err != nil {
			return Decision{}, err
		}
		if g.Anonymous || g.Source == auth.SourceCookie {
			if err := p.checkOrigin(id); err != nil {
				return Decision{}, err
			}
		}
		d := p.decision(id, g, nil, q.Face)
		if !(g.Anonymous && id.Loopback()) {
			if err := p.charge(id, d.Owner, each); err != nil {
				return Decision{}, err
			}
		}
		return d, nil
	}
	if fr.OpenWrites && own {
		// Open to anyone, bounded: the demo.
		if err := p.gateHost(id, false); err != nil {
			return Decision{}, err
		}
		if err := p.checkOrigin(id); err != nil {
			return Decision{}, err
		}
		d := Decision{Owner: id.owner(nil), Client: id.ClientString()}
		if !id.Loopback() {
			if err := p.charge(id, d.Owner, each); err != nil {
				return Decision{}, err
			}
		}
		return d, nil
	}
	g, err := id.grant(auth.RolePublisher, q.Face)
	if err != nil {
		return Decision{}, err
	}
	if p.auth.Publisher == nil {
		// No publisher key: local processes only (development mode, or a
		// backend on the same host). Being on loopback is an ambient
		// credential: a page must not borrow it.
		if !id.Loopback() {
			return Decision{}, &Error{Status: http.StatusForbidden, Code: CodeLoopbackOnly, Reason: "loopback_only",
				Msg: "forbidden: no publisher key is configured, so only loopback clients that no proxy forwarded may publish (development mode; see --jwt-key)"}
		}
		if err := p.gateHost(id, true); err != nil {
			return Decision{}, err
		}
		if err := p.checkOrigin(id); err != nil {
			return Decision{}, err
		}
	} else {
		if g.Anonymous {
			return Decision{}, As(auth.TokenRequired())
		}
		if err := p.gateHost(id, false); err != nil {
			return Decision{}, err
		}
		if g.Source == auth.SourceCookie {
			if err := p.checkOrigin(id); err != nil {
				return Decision{}, err
			}
		}
		sels, err := p.selectors(g, q.Face, auth.RolePublisher)
		if err != nil {
			return Decision{}, err
		}
		for _, t := range q.Topics {
			if !sels.Match(t) {
				return Decision{}, As(auth.Forbidden("publish", t))
			}
		}
	}
	d := p.decision(id, g, nil, q.Face)
	if !(g.Anonymous && id.Loopback()) { // local processes are not rate-limited
		if err := p.charge(id, d.Owner, each); err != nil {
			return Decision{}, err
		}
	}
	return d, nil
}

// create: starting (Create) or stopping (Cancel) something others read.
// It needs what reading it needs; with ambient credentials (a cookie, or
// none) it must not come from another site's page; and only its owner may
// stop it.
func (p *Policy) create(id *Identity, q Query) (Decision, error) {
	d, err := p.subscribe(id, Query{Action: Subscribe, Face: q.Face, Topics: q.Topics})
	if err != nil {
		return Decision{}, err
	}
	g, err := id.grant(auth.RoleSubscriber, q.Face) // verified above: cached
	if err != nil {
		return Decision{}, err
	}
	if g.Anonymous || g.Source == auth.SourceCookie {
		if err := p.checkOrigin(id); err != nil {
			return Decision{}, err
		}
	}
	if q.Action == Cancel && q.Owner != "" && d.Owner != q.Owner {
		return Decision{}, &Error{Status: http.StatusForbidden, Code: CodeNotOwner,
			Msg: "forbidden: only the client that started this generation (the same token subject, or the same address without a token) may stop it"}
	}
	return d, nil
}

// metadata: Administer and ReadMetadata.
func (p *Policy) metadata(id *Identity, q Query) (Decision, error) {
	d := Decision{Owner: id.owner(nil), Client: id.ClientString()}
	switch q.Face {
	case FaceAdmin:
		return d, p.admin(id, q.Action)
	case FaceMercure:
		// The subscriptions API: a subscriber token whose
		// mercure.subscribe claim selects the URL; without a subscriber
		// key, loopback clients only.
		if p.auth.Subscriber == nil {
			if !id.Loopback() {
				return Decision{}, &Error{Status: http.StatusForbidden, Code: CodeLoopbackOnly, Reason: "loopback_only",
					Msg: "forbidden: no subscriber key is configured, so the subscriptions API answers only loopback clients that no proxy forwarded"}
			}
			return d, p.gateHost(id, true)
		}
		g, err := id.grant(auth.RoleSubscriber, q.Face)
		if err != nil {
			return Decision{}, err
		}
		if g.Anonymous {
			return Decision{}, As(auth.TokenRequired())
		}
		if err := p.gateHost(id, false); err != nil {
			return Decision{}, err
		}
		sels, err := p.selectors(g, q.Face, auth.RoleSubscriber)
		if err != nil {
			return Decision{}, err
		}
		for _, t := range q.Topics {
			if !sels.Match(t) {
				return Decision{}, Errorf(http.StatusForbidden, CodeTopicForbidden, "forbidden: the token's mercure.subscribe claim does not select %q", t)
			}
		}
		return p.decision(id, g, sels, q.Face), nil
	case FaceDemo:
		return d, p.gateHost(id, false)
	}
	return Decision{}, Errorf(http.StatusInternalServerError, "", "access: no rule for %s on face %q", q.Action, q.Face)
}

// admin: the admin API and the dashboard. With --admin-token, its bearer
// (or ?token=); without it, a loopback client no proxy forwarded, on an
// allowed host, and for a state-changing request not from another origin.
func (p *Policy) admin(id *Identity, a Action) error {
	if want := p.o.AdminToken; want != "" {
		got, ok := id.adminToken()
		if !ok || got == "" {
			return &Error{Status: http.StatusUnauthorized, Code: CodeAdminTokenMissing,
				Msg: "admin token required: use Authorization: Bearer <token> (or ?token= for the dashboard page)"}
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			return &Error{Status: http.StatusForbidden, Code: CodeAdminTokenInvalid, Msg: "invalid admin token"}
		}
		return nil
	}
	if !id.Loopback() {
		return &Error{Status: http.StatusForbidden, Code: CodeLoopbackOnly, Reason: "loopback_only",
			Msg: "forbidden: until --admin-token is set, the admin API and the dashboard answer only loopback clients that no proxy forwarded"}
	}
	if err := p.gateHost(id, true); err != nil {
		return err
	}
	if a == Administer && (id.Origin != "" && !id.SameOrigin || id.Origin == "" && id.CrossSite) {
		return &Error{Status: http.StatusForbidden, Code: CodeOriginForbidden, Reason: "origin_forbidden",
			Msg: "forbidden: without --admin-token, a state-changing admin request must come from Herald's own origin (or from a tool that sends no Origin)"}
	}
	return nil
}

// gateHost refuses a request whose Host is not on the host list where the
// list applies: always when the operator gave it (--allowed-hosts); by
// default in development mode and for decisions that rest on the client
// being on loopback (loopbackTrust), which DNS rebinding would borrow.
func (p *Policy) gateHost(id *Identity, loopbackTrust bool) error {
	if id.HostAllowed || !p.hosts.explicit && !p.devMode && !loopbackTrust {
		return nil
	}
	return &Error{Status: http.StatusForbidden, Code: CodeHostForbidden, Reason: "host_forbidden",
		Msg: fmt.Sprintf("forbidden: Herald does not answer to host %q (see --allowed-hosts: a guard against DNS rebinding)", clip(id.Host))}
}

// checkOrigin refuses a request authorized by ambient credentials (a
// cookie, no token at all, or being on loopback) that a browser sent from
// a page of another origin that --cors-origins does not list: without it
// a page on any site could act with a visitor's cookie, or through a
// developer's loopback server (CSRF).
func (p *Policy) checkOrigin(id *Identity) error {
	switch {
	case id.Origin != "":
		if id.SameOrigin || p.o.CORS.Listed(id.Origin) {
			return nil
		}
	case !id.CrossSite:
		return nil
	}
	return &Error{Status: http.StatusForbidden, Code: CodeOriginForbidden, Reason: "origin_forbidden",
		Msg: "forbidden: a request authorized by a cookie, by no token or by coming from loopback may not be sent from another origin's page unless --cors-origins lists it"}
}

// checkWSOrigin refuses a WebSocket upgrade from a page of an origin that
// is neither the server's own, nor listed in --cors-origins, nor matched
// by --ws-origin, whatever its credentials.
func (p *Policy) checkWSOrigin(id *Identity) error {
	if id.Origin == "" || id.SameOrigin || p.o.CORS.Listed(id.Origin) {
		return nil
	}
	for _, pat := range p.o.WSOrigins {
		if matchOriginPattern(pat, id.Origin) {
			return nil
		}
	}
	return &Error{Status: http.StatusForbidden, Code: CodeOriginForbidden, Reason: "origin_forbidden",
		Msg: fmt.Sprintf("forbidden: a WebSocket from Origin %q: it is not this server's origin, nor allowed by --ws-origin or --cors-origins", clip(id.Origin))}
}

// charge takes one publish from key's rate, once per request unless each.
func (p *Policy) charge(id *Identity, key string, each bool) error {
	if !each {
		id.mu.Lock()
		done := id.charged
		id.charged = true
		id.mu.Unlock()
		if done {
			return nil
		}
	}
	ok, wait := p.rate.Allow(key)
	if ok {
		return nil
	}
	secs := max(int(math.Ceil(wait.Seconds())), 1)
	return &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimited, Reason: "publish_rate", RetryAfter: secs,
		Msg: fmt.Sprintf("too many publish requests: over %g per second (--publish-rate); retry in %d s", p.o.PublishRate, secs)}
}

// selectors returns the grant's selectors for role as face reads them.
func (p *Policy) selectors(g *auth.Grant, face Face, role auth.Role) (auth.Selectors, error) {
	if g.Anonymous {
		return nil, nil
	}
	c := p.face(face).Compiler
	if c == nil {
		if role == auth.RolePublisher {
			return g.Publish, nil
		}
		return g.Subscribe, nil
	}
	// The face reads the mercure claim's selectors its own way; the
	// matchers of authorization details name their type and read the
	// same everywhere.
	details := g.DetailSelectors(role)
	if g.Claims == nil || g.Claims.Mercure == nil {
		return details, nil
	}
	list, name := g.Claims.Mercure.Subscribe, "mercure.subscribe"
	if role == auth.RolePublisher {
		list, name = g.Claims.Mercure.Publish, "mercure.publish"
	}
	s, err := auth.CompileSelectors(c, list)
	if err != nil {
		return nil, &Error{Status: http.StatusUnauthorized, Code: CodeTokenInvalid, Msg: "unauthorized: invalid token: " + name + ": " + err.Error(), Err: errors.Join(auth.ErrInvalidToken, err)}
	}
	return append(s, details...), nil
}

// decision builds an allowed request's Decision.
func (p *Policy) decision(id *Identity, g *auth.Grant, sels auth.Selectors, face Face) Decision {
	d := Decision{Expires: g.Expires, Owner: id.owner(g), Client: id.ClientString()}
	if len(sels) > 0 {
		d.CanSeePrivate = func(t string) bool {
			if ns := p.namespaceOf(t); ns != nil && ns.Read == ReachOwnFace && ns.Face != face {
				return false // never through another face, whatever the token says
			}
			return sels.Match(t)
		}
	}
	if g.Claims != nil && g.Claims.Mercure != nil {
		d.Payload = g.Claims.Mercure.Payload
	}
	if len(g.Details) > 0 {
		d.PayloadFor = g.SubscriptionPayload
	}
	return d
}

func reserved(topic string, ns *Namespace, what string) *Error {
	msg := fmt.Sprintf("forbidden: topic %q belongs to %s (a reserved namespace): it cannot be %s here", clip(topic), ns.Name, map[string]string{"read": "read", "publish": "published to"}[what])
	if ns.Path != "" && what == "read" {
		msg += "; use " + ns.Path
	}
	return &Error{Status: http.StatusForbidden, Code: CodeTopicReserved, Reason: "topic_reserved", Msg: msg}
}

// clip bounds a client-supplied string quoted in an error message.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
