package mercure

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/httpjson"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/metrics"
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
	// Verifier returns the verifier of tokens for a role, nil when no key
	// is configured for it: then the role's tokens are not read (requests
	// are anonymous), as everywhere in Herald.
	Verifier func(auth.Role) *auth.Verifier
	// AnonymousSubscribers lets subscribers without a token in: they get
	// public updates only. Without it, a subscriber needs a valid token
	// (when a subscriber key is configured).
	AnonymousSubscribers bool
	// CheckPublish, if set, applies the server's rules beyond the token's
	// claims to a publish request: development mode (no publisher key:
	// loopback only), cookies from foreign origins, publish rate. g is the
	// request's grant (anonymous without a publisher key). It returns an
	// *Error to refuse.
	CheckPublish func(r *http.Request, g *auth.Grant) error
	// CookieName is the cookie a token may come in. Default
	// "mercureAuthorization"; heraldAuthorization is read too.
	CookieName string
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
	// Retry, KeepAlive and WriteTimeout are the streams' reconnection hint,
	// keep-alive interval and per-write deadline (see eventstream).
	Retry, KeepAlive, WriteTimeout time.Duration
	// Metrics, if set, count connections, deliveries, rejections and
	// publish latency.
	Metrics *metrics.Metrics
	// Logger; default slog.Default().
	Logger *slog.Logger
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

// Error is a refused request: its HTTP status and what the JSON error body
// says.
type Error struct {
	Status int
	Code   string
	Msg    string
	// RetryAfter, if positive, is sent as a Retry-After header (seconds).
	RetryAfter int
	// Reason, if set, labels the rejection in metrics.
	Reason string
}

func (e *Error) Error() string { return e.Msg }

// New returns a Handler and starts following the log for publishers' ids
// until ctx ends or Close is called.
func New(ctx context.Context, o Options) *Handler {
	if o.CookieName == "" {
		o.CookieName = auth.MercureCookieName
	}
	if o.MaxTopics <= 0 {
		o.MaxTopics = 64
	}
	if o.MaxDataBytes <= 0 {
		o.MaxDataBytes = 1 << 20
	}
	if o.Verifier == nil {
		o.Verifier = func(auth.Role) *auth.Verifier { return nil }
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
			w.Header().Set("Allow", "GET, POST")
			h.fail(w, &Error{Status: http.StatusMethodNotAllowed, Msg: "method not allowed: GET subscribes, POST publishes"})
		}
	case p == SubscriptionsPath || len(p) > len(SubscriptionsPath) && p[:len(SubscriptionsPath)+1] == SubscriptionsPath+"/":
		h.subscriptionsAPI(w, r)
	default:
		h.fail(w, &Error{Status: http.StatusNotFound, Msg: "no such endpoint: " + r.Method + " " + r.URL.Path})
	}
}

// fail answers a refused request with a JSON error.
func (h *Handler) fail(w http.ResponseWriter, err error) {
	var e *Error
	var ae *auth.Error
	switch {
	case errors.As(err, &e):
	case errors.As(err, &ae):
		e = &Error{Status: ae.Status, Code: ae.Code, Msg: ae.Msg}
	default:
		e = &Error{Status: http.StatusBadRequest, Msg: err.Error()}
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	if h.o.Metrics != nil && e.Status < 500 && e.Status != http.StatusNotFound && e.Status != http.StatusMethodNotAllowed {
		h.o.Metrics.Rejected.WithLabelValues(reason(e)).Inc()
	}
	httpjson.ErrorCode(w, e.Status, e.Code, e.Msg)
}

func reason(e *Error) string {
	switch {
	case e.Reason != "":
		return e.Reason
	case e.Status == http.StatusUnauthorized:
		return "unauthorized"
	case e.Status == http.StatusForbidden:
		return "forbidden"
	case e.Status == http.StatusTooManyRequests:
		return "limit"
	case e.Status == http.StatusRequestEntityTooLarge:
		return "too_large"
	}
	return "bad_request"
}

func badRequest(msg string) *Error { return &Error{Status: http.StatusBadRequest, Msg: msg} }

// token returns the request's token with the Mercure protocol's
// precedence: the Authorization header, then the authorization query
// parameter, then the cookie (CookieName, then heraldAuthorization). It
// returns ("", auth.SourceNone, nil) when there is none.
func (h *Handler) token(r *http.Request) (string, auth.Source, error) {
	if _, ok := r.Header["Authorization"]; ok {
		return auth.TokenFromRequest(r)
	}
	if vs, ok := r.URL.Query()[auth.QueryParam]; ok && len(vs) > 0 {
		// auth reads cookies before the query; without them it reads the
		// query parameter, with its checks.
		r2 := new(http.Request)
		*r2 = *r
		r2.Header = r.Header.Clone()
		r2.Header.Del("Cookie")
		return auth.TokenFromRequest(r2)
	}
	for _, name := range []string{h.o.CookieName, auth.CookieName} {
		c, err := r.Cookie(name)
		if err != nil || c.Value == "" {
			continue
		}
		if len(c.Value) > auth.MaxTokenLen {
			return "", auth.SourceCookie, &auth.Error{Status: http.StatusUnauthorized, Code: auth.CodeTokenInvalid, Msg: "unauthorized: invalid token: token too long", Err: auth.ErrInvalidToken}
		}
		return c.Value, auth.SourceCookie, nil
	}
	return "", auth.SourceNone, nil
}

// grant is what a request's token allows on the Mercure endpoint.
type grant struct {
	*auth.Grant
	// publish and subscribe are the mercure claim's selectors compiled the
	// Mercure way (URI templates); nil when the claim has none.
	publish, subscribe auth.Selectors
	// payload is the mercure claim's payload, if any.
	payload json.RawMessage
}

// authenticate verifies r's token for role. Without a key for role, or
// without a token, the grant is anonymous. A token that does not verify is
// refused (401), even where anonymous requests would pass.
func (h *Handler) authenticate(r *http.Request, role auth.Role) (*grant, error) {
	v := h.o.Verifier(role)
	if v == nil {
		return &grant{Grant: &auth.Grant{Anonymous: true}}, nil
	}
	tok, src, err := h.token(r)
	if err != nil {
		return nil, err
	}
	if tok == "" {
		return &grant{Grant: &auth.Grant{Anonymous: true}}, nil
	}
	g, err := v.Verify(r.Context(), tok)
	if err != nil {
		return nil, err
	}
	g.Source = src
	out := &grant{Grant: g}
	if c := g.Claims; c != nil && c.Mercure != nil {
		// The verifier compiled the claim with Herald's pattern syntax;
		// the Mercure endpoint reads the same selectors as URI templates.
		if out.publish, err = auth.CompileSelectors(Compiler, c.Mercure.Publish); err != nil {
			return nil, &auth.Error{Status: http.StatusUnauthorized, Code: auth.CodeTokenInvalid, Msg: "unauthorized: invalid token: mercure.publish: " + err.Error(), Err: errors.Join(auth.ErrInvalidToken, err)}
		}
		if out.subscribe, err = auth.CompileSelectors(Compiler, c.Mercure.Subscribe); err != nil {
			return nil, &auth.Error{Status: http.StatusUnauthorized, Code: auth.CodeTokenInvalid, Msg: "unauthorized: invalid token: mercure.subscribe: " + err.Error(), Err: errors.Join(auth.ErrInvalidToken, err)}
		}
		out.payload = c.Mercure.Payload
	}
	return out, nil
}

// queryValues parses r's query, refusing a malformed one.
func queryValues(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("malformed query string: " + err.Error())
	}
	return q, nil
}
