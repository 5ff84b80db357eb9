package mercure

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/transport/sse"
)

// Path is the Mercure hub's URL path.
const Path = "/.well-known/mercure"

// SubscriptionsPath is the path of the subscriptions API and the prefix of
// subscription events' topics.
const SubscriptionsPath = Path + "/subscriptions"

// Options configure a Handler. Hub is required; zero values of the others
// mean the defaults given.
type Options struct {
	Hub *hub.Hub
	// Access decides who may subscribe (access.Subscribe), publish
	// (access.Publish) and read the subscriptions API
	// (access.ReadMetadata), on face access.FaceMercure: the server's
	// policy, with the face's rules (Mercure's token precedence, URI
	// template selectors, "a valid token reads public updates") set by
	// the caller (see FaceRules). Nil lets every request in without
	// private updates (unit tests).
	Access access.Decider
	// Subscriptions turns on subscription events and the subscriptions API.
	Subscriptions bool
	// IDIndexSize bounds the publisher-chosen ids remembered for resuming.
	// Default 100000.
	IDIndexSize int
	// MaxTopics bounds the topics of an update and the selectors of a
	// subscription. Default 64.
	MaxTopics int
	// MaxDataBytes bounds an update's data. Default 1 MiB.
	MaxDataBytes int
	// Stream writes the subscribers' text/event-stream responses (the
	// server's, shared by every face). Required.
	Stream *sse.Server
	// Metrics, if set, count publish latency.
	Metrics *metrics.Metrics
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// FaceRules returns the policy's rules for the Mercure face: tokens looked
// for with the protocol's precedence (the Authorization header, the
// authorization query parameter, then the cookie named cookie and
// heraldAuthorization), claims' selectors read as URI templates, and any
// valid token reads public updates (Mercure's rule, for ordinary topics
// and the hub's own; a topic another face reserves keeps its own rule).
func FaceRules(cookie string) access.FaceRules {
	return access.FaceRules{MercureTokens: true, CookieName: cookie, Compiler: Compiler, TokenReadsPublic: true}
}

// Namespace is the hub's reserved namespace: every topic holding
// /.well-known/mercure (HubTopic, which every update carries, and the
// subscription events' topics), and every topic whose path, resolved and
// normalized, is the hub's (see Reserved). Only the Mercure face reads it,
// under its own filters; nobody publishes to it.
func Namespace() access.Namespace {
	return access.Namespace{
		Name:  "the Mercure hub",
		Face:  access.FaceMercure,
		Match: Reserved,
		Read:  access.ReachOwnFace,
		Path:  Path,
	}
}

// hubURL is the base relative topics are resolved against to tell whether
// they address the hub (the reference hub's, when its public URL is not
// configured: a relative "mercure" is not the hub's path).
var hubURL = &url.URL{Scheme: "https", Host: "hub.invalid", Path: "/"}

// Reserved reports whether topic lies in the hub's reserved namespace: it
// contains /.well-known/mercure, or, resolved as a URL reference against
// the hub's URL, with its dot segments removed and its percent-encoding
// decoded, its path is /.well-known/mercure or below it (so that
// /.well-known/%6Dercure/... or /a/../.well-known/mercure cannot forge
// the hub's own updates), as the current protocol requires.
func Reserved(topic string) bool {
	if strings.Contains(topic, Path) {
		return true
	}
	if !strings.Contains(topic, "%") && !strings.Contains(topic, "/.") && !strings.HasPrefix(topic, ".") {
		// Neither an encoded character nor a dot segment: the path is
		// in the topic as it is, and the test above said it all.
		return false
	}
	u, err := url.Parse(topic)
	if err != nil {
		return false // not a URL reference: it cannot name a hub path
	}
	p := hubURL.ResolveReference(u).Path
	if p == "" {
		return false
	}
	p = path.Clean("/" + p)
	return p == Path || strings.HasPrefix(p, Path+"/")
}

// Handler serves the Mercure protocol: subscribe (GET) and publish (POST)
// on Path and, when enabled, the subscriptions API below SubscriptionsPath.
// Create it with New and Close it. It is safe for concurrent use.
type Handler struct {
	o     Options
	log   *slog.Logger
	index *index
	subs  *registry

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Handler and starts following the log for publishers' ids
// until ctx ends or Close is called.
func New(ctx context.Context, o Options) *Handler {
	if o.MaxTopics <= 0 {
		o.MaxTopics = 64
	}
	if o.MaxDataBytes <= 0 {
		o.MaxDataBytes = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &Handler{o: o, log: o.Logger, index: newIndex(o.IDIndexSize), subs: newRegistry()}
	ctx, h.cancel = context.WithCancel(ctx)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.index.follow(ctx, o.Hub, h.log)
	}()
	return h
}

// Close stops following the log. Open streams end with the hub.
func (h *Handler) Close() {
	h.cancel()
	h.wg.Wait()
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	switch {
	case p == Path:
		switch r.Method {
		case http.MethodGet:
			h.subscribe(w, r)
		case http.MethodPost:
			h.publish(w, r)
		default:
			access.WriteMethodNotAllowed(w, r, "GET, POST")
		}
	case p == SubscriptionsPath || len(p) > len(SubscriptionsPath) && p[:len(SubscriptionsPath)+1] == SubscriptionsPath+"/":
		h.subscriptionsAPI(w, r)
	default:
		access.Write(w, r, access.Errorf(http.StatusNotFound, "", "no such endpoint: %s %s", r.Method, r.URL.Path))
	}
}

// ask asks the policy about r on the Mercure face.
func (h *Handler) ask(r *http.Request, action access.Action, topics []string) (access.Decision, error) {
	return access.Ask(h.o.Access, r, access.Query{Action: action, Face: access.FaceMercure, Topics: topics})
}

// refuse answers a refusal of the policy, with the Bearer challenge of
// RFC 6750 the current protocol asks for: error="invalid_token" for a
// token that does not verify or has expired, error="insufficient_scope"
// for one that does not cover the request, no error code when the request
// carries no token.
func refuse(w http.ResponseWriter, r *http.Request, err error) {
	e := access.As(err)
	switch {
	case e.Status == http.StatusUnauthorized && (e.Code == access.CodeTokenInvalid || e.Code == access.CodeTokenExpired):
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald", error="invalid_token"`)
	case e.Status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
	case e.Status == http.StatusForbidden && e.Code == access.CodeTopicForbidden:
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald", error="insufficient_scope"`)
	}
	access.Write(w, r, e)
}

func badRequest(msg string) *access.Error { return access.BadRequest("%s", msg) }

// queryValues parses r's query, refusing a malformed one.
func queryValues(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("malformed query string: " + err.Error())
	}
	return q, nil
}
