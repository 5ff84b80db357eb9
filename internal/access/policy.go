package access

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/clientip"
	"github.com/heraldpush/herald/internal/cors"
	"github.com/heraldpush/herald/internal/limit"
)

// Action is what a request wants to do.
type Action uint8

// The actions. New faces add theirs at the end (Durable Streams will add
// create, append, read and delete on stream paths).
const (
	// Subscribe reads topics: a stream of their events, live and replayed.
	Subscribe Action = iota + 1
	// Publish writes an event to topics.
	Publish
	// Send writes a client message to a topic (a WebSocket "send" frame,
	// POST /send): a publish charged once per message.
	Send
	// Create starts something that others may read (a chat generation):
	// it needs what reading it needs, and is refused across sites when
	// authorized by ambient credentials.
	Create
	// Cancel stops something created before: only its owner may.
	Cancel
	// Administer changes the server's state (purge, disconnect).
	Administer
	// ReadMetadata reads about the server: topics, subscribers, the
	// dashboard, a face's own listings.
	ReadMetadata
	// Public needs nothing: pages, assets, answers for unknown paths.
	Public
	// Probe needs nothing and is exempt from per-client limits and the
	// host list: health, readiness, metrics, ping.
	Probe
)

var actionNames = [...]string{"", "subscribe", "publish", "send", "create", "cancel", "administer", "read-metadata", "public", "probe"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "action?"
}

// Face is a way into Herald: an endpoint family with its own wire format
// and, sometimes, its own reading of tokens.
type Face string

// Herald's faces.
const (
	FaceEvents  Face = "events"  // GET /events: SSE
	FaceWS      Face = "ws"      // GET /ws and its "send" frames
	FacePublish Face = "publish" // POST /publish
	FaceSend    Face = "send"    // POST /send
	FaceMercure Face = "mercure" // /.well-known/mercure and its subscriptions API
	FaceChat    Face = "chat"    // /chat, /chat/stream/{id}
	FaceDemo    Face = "demo"    // /, /sse/*
	FaceAdmin   Face = "admin"   // /admin/*, /dashboard
	FaceOps     Face = "ops"     // /healthz, /readyz, /ping, /metrics
	FaceStatic  Face = "static"  // pages and files: /herald.js, /hybrid...
	FaceStreams Face = "streams" // /v1/stream/*: Durable Streams
	// FaceInternal is no route's face: the namespace of what the server
	// keeps for itself in the log (the work journal) belongs to it, so no
	// request may read or write those topics.
	FaceInternal Face = "internal"
)

// FaceRules are what a face changes in the policy's reading of a request.
// The zero value reads tokens as Herald does everywhere.
type FaceRules struct {
	// MercureTokens looks for the token with the Mercure protocol's
	// precedence (the Authorization header, the authorization query
	// parameter, then the cookie CookieName and heraldAuthorization);
	// otherwise Herald's (auth.TokenFromRequest).
	MercureTokens bool
	// CookieName is the Mercure cookie (default mercureAuthorization).
	CookieName string
	// Compiler compiles the selectors of the token's mercure claim; nil:
	// the verifier's (auth.Patterns).
	Compiler auth.Compiler
	// TokenReadsPublic: any valid token may read the public events of
	// ordinary topics and of the face's own namespace, as Mercure has it;
	// otherwise, without anonymous access, each topic must be covered.
	TokenReadsPublic bool
	// CheckOrigin: a request with an Origin header must come from the
	// server's own origin or an allowed one, whatever its credentials (a
	// WebSocket upgrade: browsers send cookies with it and it has no
	// CORS).
	CheckOrigin bool
	// OpenWrites: anyone may publish to the face's own writable namespace,
	// without a token, charged to the publish rate by address (the demo).
	OpenWrites bool
	// AnonymousReads: clients without a token may read through the face
	// even when a subscriber key is configured and --allow-anonymous is
	// off (Durable Streams' --ds-anonymous-reads).
	AnonymousReads bool
}

func (f FaceRules) token(r *http.Request) (string, auth.Source, error) {
	if f.MercureTokens {
		return auth.MercureTokenFromRequest(r, f.CookieName)
	}
	return auth.TokenFromRequest(r)
}

// Options configure a Policy. Zero values mean: no key, no proxy trusted,
// no CORS origin, no limit.
type Options struct {
	// Auth holds the verifiers of publishers' and subscribers' tokens;
	// nil or empty: development mode.
	Auth *auth.Authorizer
	// AllowAnonymous lets subscribers without a token in (public events
	// only) when a subscriber key is configured. Without a subscriber key
	// they always are.
	AllowAnonymous bool
	// Leeway tolerates clock skew in expiry checks (as the verifiers do).
	Leeway time.Duration
	// Proxies resolves client addresses (--trusted-proxies).
	Proxies clientip.Resolver
	// CORS: its listed origins may act with ambient credentials.
	CORS *cors.Policy
	// WSOrigins are the cross-origin host patterns allowed to open a
	// WebSocket (--ws-origin).
	WSOrigins []string
	// AllowedHosts is --allowed-hosts; empty: the defaults (see
	// docs/security.md). ListenAddr is --addr, whose host is a default.
	AllowedHosts []string
	ListenAddr   string
	// AdminToken guards the admin face; empty: loopback clients only.
	AdminToken string
	// MaxPerIP and MaxPerSubject bound the concurrent requests of one
	// client address and of one verified token subject (0: no limit).
	MaxPerIP, MaxPerSubject int
	// PublishRate and PublishBurst bound publishes per sender (0 rate: no
	// limit).
	PublishRate  float64
	PublishBurst int
	// Rejected, if set, counts a refusal under a reason.
	Rejected func(reason string)
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Policy is the one door: every route is registered with a Route entry
// (see Router) and every handler that reads or writes topics asks Decide.
// Build it with New, register faces and namespaces while mounting, then
// serve; its configuration must not change once requests arrive. It is
// safe for concurrent use.
type Policy struct {
	o          Options
	auth       *auth.Authorizer
	devMode    bool
	anon       bool
	hosts      *hostList
	faces      map[Face]FaceRules
	namespaces []Namespace

	perIP      *limit.Concurrency
	perSubject *limit.Concurrency
	rate       *limit.Rate

	undecided atomic.Int64
	warnProxy sync.Once
}

// New returns a Policy for o.
func New(o Options) *Policy {
	if o.Auth == nil {
		o.Auth = &auth.Authorizer{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	p := &Policy{
		o:          o,
		auth:       o.Auth,
		devMode:    o.Auth.Publisher == nil && o.Auth.Subscriber == nil,
		anon:       o.Auth.Subscriber == nil || o.AllowAnonymous,
		faces:      make(map[Face]FaceRules),
		perIP:      limit.NewConcurrency(o.MaxPerIP),
		perSubject: limit.NewConcurrency(o.MaxPerSubject),
		rate:       limit.NewRate(o.PublishRate, o.PublishBurst),
	}
	var extra []string
	if o.CORS != nil {
		extra = append(extra, originHosts(o.CORS.Origins())...)
	}
	extra = append(extra, originHosts(o.WSOrigins)...)
	p.hosts = newHostList(o.AllowedHosts, o.ListenAddr, extra)
	p.faces[FaceWS] = FaceRules{CheckOrigin: true}
	return p
}

// DevMode reports whether no key is configured: anonymous subscribers,
// loopback publishers.
func (p *Policy) DevMode() bool { return p.devMode }

// AnonymousSubscribers reports whether subscribers without a token are
// let in (public events only).
func (p *Policy) AnonymousSubscribers() bool { return p.anon }

// SetFace sets the rules of face. Call it while mounting.
func (p *Policy) SetFace(f Face, r FaceRules) { p.faces[f] = r }

func (p *Policy) face(f Face) FaceRules { return p.faces[f] }

// Reserve registers a namespace. Call it while mounting; a topic belongs
// to the first registered namespace that matches it.
func (p *Policy) Reserve(ns Namespace) { p.namespaces = append(p.namespaces, ns) }

// Undecided returns how many requests to routes whose handler must ask the
// policy (Route.Topics) ended without asking it or answering an error: a
// handler that skipped the door. It must stay 0; the access matrix checks
// it.
func (p *Policy) Undecided() int64 { return p.undecided.Load() }

// Identify returns r's Identity: the one the middleware stored, or a new
// one for a request that did not go through it.
func (p *Policy) Identify(r *http.Request) *Identity {
	if id := From(r.Context()); id != nil && id.p == p {
		return id
	}
	return p.identify(r)
}

func (p *Policy) identify(r *http.Request) *Identity {
	id := &Identity{p: p, r: r, Client: p.o.Proxies.Resolve(r)}
	id.Host = hostName(r.Host)
	id.HostAllowed = p.hosts.allowed(id.Host)
	id.Origin = r.Header.Get("Origin")
	id.SameOrigin = sameOrigin(id.Origin, r.Host)
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		id.CrossSite = true
	}
	if id.Client.Forwarded && !id.Client.TrustedPeer && id.Client.Peer.IsLoopback() {
		p.warnProxy.Do(func() {
			p.o.Logger.Warn("a request from a local proxy carries X-Forwarded-For, but --trusted-proxies does not name the proxy: its clients count as remote and unknown (no loopback privileges). Set --trusted-proxies 127.0.0.1 (see docs/security.md)")
		})
	}
	return id
}

// Middleware resolves each request's Identity once and stores it in the
// request's context, for the Router, Decide and Write.
func (p *Policy) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := p.identify(r)
		r = r.WithContext(withIdentity(r.Context(), id))
		id.r = r
		next.ServeHTTP(w, r)
	})
}

// Query is a face's question to the policy.
type Query struct {
	Action Action
	Face   Face
	// Topics are the topics acted on (for ReadMetadata on the Mercure
	// face: the subscriptions API's URL path).
	Topics []string
	// Owner is, for Cancel, the owner recorded when the thing was created
	// (Decision.Owner of its Create); empty when unknown.
	Owner string
}

// Decision is what the policy grants: what the handler needs to serve an
// allowed request.
type Decision struct {
	// CanSeePrivate reports whether private events of topic may be
	// delivered; nil delivers none.
	CanSeePrivate func(topic string) bool
	// Expires, if not zero, is when the credentials expire: a stream then
	// ends with herald.auth-expired.
	Expires time.Time
	// Owner names the requester for ownership and de-duplication:
	// "sub:<subject>" or "tok:<hash>" with a token, "addr:<address>"
	// without one.
	Owner string
	// Client is the client's address for per-client limits ("unknown"
	// when it could not be resolved).
	Client string
	// Payload is the token's mercure.payload claim, if any (the Mercure
	// face attaches it to subscription events).
	Payload json.RawMessage
	// PayloadFor, when the token carries Mercure authorization details,
	// returns the payload of a subscription whose matcher is match: the
	// first subscribe detail's that selects it, else Payload. Nil
	// otherwise: Payload is every subscription's.
	PayloadFor func(match string) json.RawMessage
}

// Decider is what a handler asks. *Policy implements it; a handler whose
// Decider is nil lets every request through with an empty Decision (for
// unit tests of the handler alone).
type Decider interface {
	Decide(r *http.Request, q Query) (Decision, error)
}

// Ask asks d, or allows with an empty Decision when d is nil.
func Ask(d Decider, r *http.Request, q Query) (Decision, error) {
	if d == nil {
		return Decision{}, nil
	}
	return d.Decide(r, q)
}

// Decide answers q for r: a Decision, or an *Error saying why not (with
// the status, code and message the face answers with, via Write).
func (p *Policy) Decide(r *http.Request, q Query) (Decision, error) {
	id := p.Identify(r)
	id.asked.Store(true)
	switch q.Action {
	case Subscribe:
		return p.subscribe(id, q)
	case Publish, Send:
		return p.publish(id, q)
	case Create, Cancel:
		return p.create(id, q)
	case Administer, ReadMetadata:
		return p.metadata(id, q)
	case Public, Probe:
		return Decision{Owner: id.owner(nil), Client: id.ClientString()}, nil
	}
	return Decision{}, Errorf(http.StatusInternalServerError, "", "access: unknown action %d", q.Action)
}

func withIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// DeciderFunc adapts a function to the Decider interface (tests, or a
// face embedded without a Policy).
type DeciderFunc func(r *http.Request, q Query) (Decision, error)

// Decide calls f.
func (f DeciderFunc) Decide(r *http.Request, q Query) (Decision, error) { return f(r, q) }
