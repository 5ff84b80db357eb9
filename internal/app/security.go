package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/internal/api"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/clientip"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/cors"
	"github.com/heraldpush/herald/internal/eventstream"
	"github.com/heraldpush/herald/internal/httpjson"
	"github.com/heraldpush/herald/internal/limit"
	"github.com/heraldpush/herald/internal/reqlife"
	"github.com/heraldpush/herald/pubsub"
)

// Rejection reasons of the herald_requests_rejected_total metric that this
// file counts.
const (
	reasonMaxConnections    = "max_connections"
	reasonPerIP             = "max_connections_per_ip"
	reasonPerSubject        = "max_connections_per_subject"
	reasonPublishRate       = "publish_rate"
	reasonHeaderTooLarge    = "header_too_large"
	reasonHeaderTimeout     = "header_timeout"
	reasonBadPath           = "bad_path"
	reasonBodyTimeout       = "body_timeout"
	reasonOriginForbidden   = "origin_forbidden"
	reasonLoopbackOnly      = "loopback_only"
	codeRateLimited         = "rate_limited"
	codeTooManyConnections  = "too_many_connections"
	codeRequestHeadersLarge = "headers_too_large"
)

// security holds the App's authentication, CORS and limits, built once from
// the configuration by initSecurity.
type security struct {
	authz *auth.Authorizer
	// devMode: no key at all (anonymous subscribers; loopback publishers).
	devMode bool
	// anonSubscribers: subscribers without a token are let in (public
	// events only).
	anonSubscribers bool
	ips             clientip.Resolver
	cors            *cors.Policy
	perIP           *limit.Concurrency
	perSubject      *limit.Concurrency
	publishRate     *limit.Rate
	tls             *tls.Config // nil: cleartext
	maxHeaderBytes  int
}

// initSecurity builds the verifiers, CORS policy and limiters from the
// configuration, and logs the security posture.
func (a *App) initSecurity(ctx context.Context) error {
	c := &a.cfg
	s := &security{
		devMode:        c.Auth.DevMode(),
		cors:           cors.New(c.HTTP.CORSOrigins),
		perIP:          limit.NewConcurrency(c.HTTP.MaxConnectionsPerIP),
		perSubject:     limit.NewConcurrency(c.HTTP.MaxConnectionsPerSubject),
		publishRate:    limit.NewRate(c.HTTP.PublishRate, c.HTTP.PublishBurst),
		maxHeaderBytes: int(c.HTTP.MaxHeaderBytes),
	}
	trusted, err := config.ParsePrefixes(c.HTTP.TrustedProxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	s.ips = clientip.Resolver{Trusted: trusted}

	built := make(map[config.JWTKey]*auth.Verifier)
	verifier := func(k config.JWTKey, prefix string) (*auth.Verifier, error) {
		if !k.IsSet() {
			return nil, nil
		}
		if v := built[k]; v != nil {
			return v, nil // one key for both roles: one verifier
		}
		o := auth.VerifierOptions{Alg: k.Alg, Audience: c.Auth.Audience, Issuer: c.Auth.Issuer, Leeway: c.Auth.Leeway}
		switch {
		case k.Key != "":
			o.Key = []byte(k.Key)
		case k.KeyFile != "":
			b, err := os.ReadFile(k.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("--%sjwt-key-file: %w", prefix, err)
			}
			o.Key = bytes.TrimRight(b, "\r\n")
		default:
			o.JWKS = auth.NewJWKS(k.JWKSURL, &auth.JWKSOptions{TTL: c.Auth.JWKSCacheTTL, MinRefresh: c.Auth.JWKSMinRefresh, Logger: a.log})
			// Fetch at start so that the first subscribers do not wait;
			// a failure is logged and retried when tokens arrive.
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				_ = o.JWKS.Refresh(ctx)
			}()
		}
		v, err := auth.NewVerifier(o)
		if err != nil {
			return nil, fmt.Errorf("--%sjwt-*: %w", prefix, err)
		}
		built[k] = v
		return v, nil
	}
	s.authz = &auth.Authorizer{}
	pubPrefix, subPrefix := "", ""
	if c.Auth.Publisher.IsSet() {
		pubPrefix = "publisher-"
	}
	if c.Auth.Subscriber.IsSet() {
		subPrefix = "subscriber-"
	}
	if s.authz.Publisher, err = verifier(c.Auth.PublisherKey(), pubPrefix); err != nil {
		return err
	}
	if s.authz.Subscriber, err = verifier(c.Auth.SubscriberKey(), subPrefix); err != nil {
		return err
	}
	s.anonSubscribers = s.authz.Subscriber == nil || c.Auth.AllowAnonymous

	if c.HTTP.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.HTTP.TLSCert, c.HTTP.TLSKey)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	a.sec = s

	switch {
	case s.devMode:
		a.log.Warn("DEVELOPMENT MODE: no JWT key is configured. Anyone may subscribe, only loopback clients may publish, and private events reach no one. Set --jwt-key (see docs/security.md) before exposing Herald.")
	default:
		a.log.Info("token authentication on",
			"publishers", keyKind(c.Auth.PublisherKey()), "subscribers", keyKind(c.Auth.SubscriberKey()),
			"anonymous_subscribers", s.anonSubscribers)
		if s.authz.Publisher == nil {
			a.log.Warn("no publisher key: only loopback clients may publish (set --publisher-jwt-key or --jwt-key)")
		}
	}
	if s.cors.Enabled() {
		a.log.Info("CORS on", "origins", c.HTTP.CORSOrigins.String())
	}
	return nil
}

func keyKind(k config.JWTKey) string {
	switch {
	case k.JWKSURL != "":
		return "jwks " + k.JWKSURL
	case k.Key != "" || k.KeyFile != "":
		if k.Alg != "" {
			return "key (" + k.Alg + ")"
		}
		return "key"
	}
	return "none (loopback only)"
}

// reqState is what the middleware learns about a request, shared with the
// access hooks through the request's context: each token is verified once
// per role.
type reqState struct {
	ip          netip.Addr
	once        [2]sync.Once
	grant       [2]*auth.Grant
	err         [2]error
	rateCharged atomic.Bool
}

type stateKey struct{}

// state returns the request's state, or a fresh one for a request that did
// not go through the middleware.
func (a *App) state(r *http.Request) *reqState {
	if st, ok := r.Context().Value(stateKey{}).(*reqState); ok {
		return st
	}
	return &reqState{ip: a.sec.ips.IP(r)}
}

// grant returns what r's token grants for role (an anonymous grant without
// a token), or an *auth.Error for a token that does not verify.
func (a *App) grant(r *http.Request, role auth.Role) (*auth.Grant, error) {
	st := a.state(r)
	st.once[role].Do(func() {
		st.grant[role], st.err[role] = a.sec.authz.Authenticate(r.Context(), r, role)
	})
	return st.grant[role], st.err[role]
}

// setSelectorCompiler makes token claims' topic selectors compile with c
// from now on. A feature that understands more selectors (the Mercure
// endpoint: URI templates) calls it while mounting, with a compiler that
// falls back to auth.Patterns. Such a feature reuses this file's policy
// through grant (the verified token of a request, for a role),
// sec.anonSubscribers, subscribeAccess and publishAccess.
func (a *App) setSelectorCompiler(c auth.Compiler) { a.sec.authz.SetCompiler(c) }

// subscribeAccess decides whether r may subscribe to topics. A valid token
// that covers a topic sees its private events too; a request without a
// token gets public events only, if anonymous subscribers are allowed.
// With a token but without anonymous access, every topic must be covered.
func (a *App) subscribeAccess(r *http.Request, topics []string) (eventstream.Access, error) {
	g, err := a.grant(r, auth.RoleSubscriber)
	if err != nil {
		return eventstream.Access{}, toHTTPError(err)
	}
	if g.Anonymous {
		if !a.sec.anonSubscribers {
			return eventstream.Access{}, toHTTPError(auth.TokenRequired())
		}
		return eventstream.Access{}, nil
	}
	if !a.sec.anonSubscribers {
		for _, t := range topics {
			if !g.CanSubscribe(t) {
				return eventstream.Access{}, toHTTPError(auth.Forbidden("subscribe", t))
			}
		}
	}
	return eventstream.Access{CanSeePrivate: g.CanSubscribe, Expires: g.Expires}, nil
}

// publishAccess decides whether r may publish m: a publisher token covering
// every topic of m or, with no publisher key, a loopback client. Requests
// authorized by ambient credentials (a cookie, or being on loopback) must
// not come from a foreign web page (CSRF). Each request is charged once
// against the publish rate of its token subject (or client address).
func (a *App) publishAccess(r *http.Request, m *pubsub.Message) error {
	g, err := a.grant(r, auth.RolePublisher)
	if err != nil {
		return toStatusError(err)
	}
	st := a.state(r)
	identity := g.Identity
	if a.sec.authz.Publisher == nil {
		if !st.ip.IsValid() || !st.ip.IsLoopback() {
			return &api.StatusError{Status: http.StatusForbidden, Code: auth.CodeLoopbackOnly, Reason: reasonLoopbackOnly,
				Msg: "forbidden: no publisher key is configured, so only loopback clients may publish (development mode; see --jwt-key)"}
		}
		if err := a.checkOrigin(r); err != nil {
			return err
		}
	} else {
		if g.Anonymous {
			return toStatusError(auth.TokenRequired())
		}
		if g.Source == auth.SourceCookie {
			if err := a.checkOrigin(r); err != nil {
				return err
			}
		}
		for _, t := range m.Topics {
			if !g.CanPublish(t) {
				return toStatusError(auth.Forbidden("publish", t))
			}
		}
	}
	if identity == "" {
		if st.ip.IsLoopback() {
			return nil // local processes are not rate-limited (see guard)
		}
		identity = "ip:" + st.ip.String()
	}
	if !st.rateCharged.Swap(true) {
		if ok, wait := a.sec.publishRate.Allow(identity); !ok {
			secs := int(math.Ceil(wait.Seconds()))
			if secs < 1 {
				secs = 1
			}
			return &api.StatusError{Status: http.StatusTooManyRequests, Code: codeRateLimited, Reason: reasonPublishRate, RetryAfter: secs,
				Msg: fmt.Sprintf("too many publish requests: over %g per second (--publish-rate); retry in %d s", a.cfg.HTTP.PublishRate, secs)}
		}
	}
	return nil
}

// checkOrigin refuses a request authorized by ambient credentials when a
// browser sent it from a page of another origin that is not listed in
// --cors-origins: without this a page on any site could publish with a
// visitor's cookie, or through a developer's loopback server.
func (a *App) checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" || a.sec.cors.Listed(origin) {
		return nil
	}
	if u, err := url.Parse(origin); err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
		return nil // same origin
	}
	return &api.StatusError{Status: http.StatusForbidden, Code: auth.CodeOriginForbidden, Reason: reasonOriginForbidden,
		Msg: "forbidden: a request authorized by a cookie or by coming from loopback may not be sent from another origin's page unless --cors-origins lists it"}
}

func toHTTPError(err error) error {
	var ae *auth.Error
	if errors.As(err, &ae) {
		return &eventstream.HTTPError{Status: ae.Status, Msg: ae.Msg, Code: ae.Code}
	}
	return err
}

func toStatusError(err error) error {
	var ae *auth.Error
	if errors.As(err, &ae) {
		return &api.StatusError{Status: ae.Status, Msg: ae.Msg, Code: ae.Code}
	}
	return err
}

// wrap adds the middleware every request goes through, outermost first:
// request log (with credentials redacted) and panic recovery; CORS; header
// size and path checks; per-client concurrency limits.
func (a *App) wrap(h http.Handler) http.Handler {
	h = a.guard(h)
	h = a.sanitize(h)
	h = a.sec.cors.Handler(h)
	return a.logRequests(h)
}

// reject counts a refusal in the metrics and answers it.
func (a *App) reject(w http.ResponseWriter, status int, reason, code, msg string) {
	a.metrics.Rejected.WithLabelValues(reason).Inc()
	httpjson.ErrorCode(w, status, code, msg)
}

// unlimited are cheap probes that per-client limits do not apply to, so
// that monitoring works when a client is at its limit.
var unlimited = map[string]bool{"/healthz": true, "/readyz": true, "/ping": true, "/metrics": true}

// guard records the request's state (client address, lazily verified
// tokens) in its context, and applies the per-address and per-subject
// concurrency limits.
func (a *App) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &reqState{ip: a.sec.ips.IP(r)}
		r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
		if unlimited[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		// A slot is held until the request ends: when the handler returns
		// or, for a stream handed over to the lean SSE path, when the
		// stream ends (see reqlife).
		life := reqlife.From(r.Context())
		// Loopback clients are local processes (or a local proxy that
		// --trusted-proxies does not name, whose users would otherwise
		// all share one address's limit): no per-address limit.
		if !st.ip.IsLoopback() {
			release, ok := a.sec.perIP.Acquire(st.ip.String())
			if !ok {
				w.Header().Set("Retry-After", "1")
				a.reject(w, http.StatusTooManyRequests, reasonPerIP, codeTooManyConnections,
					fmt.Sprintf("too many concurrent requests from your address (limit %d, --max-connections-per-ip)", a.cfg.HTTP.MaxConnectionsPerIP))
				return
			}
			if life != nil {
				life.OnEnd(release)
			} else {
				defer release()
			}
		}
		if id := a.identity(r); id != "" {
			release, ok := a.sec.perSubject.Acquire(id)
			if !ok {
				w.Header().Set("Retry-After", "1")
				a.reject(w, http.StatusTooManyRequests, reasonPerSubject, codeTooManyConnections,
					fmt.Sprintf("too many concurrent requests for this token's subject (limit %d, --max-connections-per-subject)", a.cfg.HTTP.MaxConnectionsPerSubject))
				return
			}
			if life != nil {
				life.OnEnd(release)
			} else {
				defer release()
			}
		}
		next.ServeHTTP(w, r)
	})
}

// identity returns the identity of r's token as the subscriber key or
// else the publisher key verifies it; "" without a valid token. Only a
// verified subject counts: an unverified one could be forged to use up
// someone else's limit.
func (a *App) identity(r *http.Request) string {
	if a.cfg.HTTP.MaxConnectionsPerSubject <= 0 {
		return ""
	}
	if tok, _, err := auth.TokenFromRequest(r); err != nil || tok == "" {
		return ""
	}
	for _, role := range []auth.Role{auth.RoleSubscriber, auth.RolePublisher} {
		if g, err := a.grant(r, role); err == nil && !g.Anonymous {
			return g.Identity
		}
	}
	return ""
}

// sanitize refuses requests whose line and headers exceed
// --max-header-bytes (431) and paths that are not canonical (dot segments,
// empty segments, control characters: 400), with JSON bodies. Go's server
// itself answers plain 431 beyond a hard cap of four times the limit.
func (a *App) sanitize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := headerSize(r); n > a.sec.maxHeaderBytes {
			a.reject(w, http.StatusRequestHeaderFieldsTooLarge, reasonHeaderTooLarge, codeRequestHeadersLarge,
				fmt.Sprintf("request line and headers are %d bytes, over the limit of %d (--max-header-bytes)", n, a.sec.maxHeaderBytes))
			return
		}
		if msg := checkPath(r.URL); msg != "" {
			a.reject(w, http.StatusBadRequest, reasonBadPath, "bad_path", msg)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = a.bodyDeadline(w, r.Body)
		}
		next.ServeHTTP(w, r)
	})
}

// bodyDeadline bounds the time to receive body (--read-body-timeout): a
// client that trickles or stalls its body gets 408 instead of holding a
// handler forever. The deadline is lifted once the body is read, so that a
// response streamed after it (chat) is not cut.
func (a *App) bodyDeadline(w http.ResponseWriter, body io.ReadCloser) io.ReadCloser {
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(a.cfg.HTTP.ReadBodyTimeout)); err != nil {
		return body
	}
	return &deadlineBody{ReadCloser: body, rc: rc, timeout: a.cfg.HTTP.ReadBodyTimeout}
}

type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
	done    bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !b.done {
		b.done = true
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The deadline stays: the server's attempt to drain the rest
			// of the body then fails at once and the connection closes.
			// The handler counts it in metrics under the reason.
			return n, &api.StatusError{Status: http.StatusRequestTimeout, Code: "body_timeout", Reason: reasonBodyTimeout,
				Msg: fmt.Sprintf("request body not received within %s (--read-body-timeout)", b.timeout)}
		}
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// Close leaves the deadline in place when the body was not read to its
// end: the server may still drain the rest, and that must not wait for a
// stalled client. (The server sets new deadlines for the next request.)
func (b *deadlineBody) Close() error { return b.ReadCloser.Close() }

func headerSize(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// checkPath returns why u's path is refused, or "".
func checkPath(u *url.URL) string {
	p := u.EscapedPath()
	if !strings.HasPrefix(p, "/") {
		return "invalid path: it must start with /"
	}
	for i := 0; i < len(u.Path); i++ {
		if c := u.Path[i]; c < 0x20 || c == 0x7f {
			return "invalid path: control character"
		}
	}
	segs := strings.Split(p[1:], "/")
	for i, seg := range segs {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return "invalid path: bad escape"
		}
		if dec == "." || dec == ".." {
			return "invalid path: dot segments are not allowed"
		}
		if seg == "" && i != len(segs)-1 {
			return "invalid path: empty segment (//)"
		}
	}
	return ""
}

// logRequests logs each request when it ends, with credentials in the query
// redacted, and turns a handler panic into a 500 JSON answer (and a logged
// stack) instead of a dropped connection. It also adds the
// WWW-Authenticate challenge to 401 answers.
func (a *App) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		// The request ends when the handler returns or, for a stream
		// handed over to the lean SSE path, when the stream ends: the log
		// line (and the middleware's slots, see guard) wait for that.
		ctx, life := reqlife.New(r.Context())
		r = r.WithContext(ctx)
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				a.log.Error("handler panic", "method", r.Method, "url", auth.Redacted(r.URL), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !rec.wrote {
					httpjson.Error(rec, http.StatusInternalServerError, "internal error")
				}
			}
			level := slog.LevelInfo
			switch {
			case rec.status == http.StatusServiceUnavailable:
				// Refused in an outage or at shutdown: the outage
				// reporter summarises these (internal/outage), a line
				// each would flood the log.
				level = slog.LevelDebug
			case rec.status >= 500:
				level = slog.LevelError
			}
			if a.cfg.HTTP.LogRequests && a.log.Enabled(context.Background(), level) {
				// Only these values are kept for a detached stream: not
				// the request or the ResponseWriter, which hold
				// net/http's buffers.
				attrs := []slog.Attr{slog.String("method", r.Method), slog.String("url", auth.Redacted(r.URL)),
					slog.Int("status", rec.statusCode()), {}, {}, slog.String("client", a.sec.ips.IP(r).String()),
					slog.String("proto", r.Proto)}
				wrote := rec.bytes
				life.OnEnd(func() {
					attrs[3] = slog.Int64("bytes", wrote+life.Bytes())
					attrs[4] = slog.Duration("duration", time.Since(start))
					a.log.LogAttrs(context.Background(), level, "request", attrs...)
				})
			}
			life.Returned()
		}()
		next.ServeHTTP(rec, r)
	})
}

// recorder captures a response's status and size. It keeps the
// ResponseWriter's optional abilities reachable: Unwrap for
// http.ResponseController and hijacking, FlushError and Flush.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *recorder) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, code >= 200 || code == http.StatusSwitchingProtocols
		if code == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *recorder) statusCode() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Unwrap returns the wrapped ResponseWriter.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// FlushError flushes, reporting failures (http.ResponseController uses it).
func (w *recorder) FlushError() error {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush implements http.Flusher for handlers that assert it.
func (w *recorder) Flush() { _ = w.FlushError() }

// configureServer applies the header cap, TLS and HTTP/2 settings to srv.
func (a *App) configureServer(srv *http.Server) {
	// The middleware answers 431 JSON above --max-header-bytes; Go's own
	// cap is a backstop above it.
	srv.MaxHeaderBytes = 4 * a.sec.maxHeaderBytes
	var p http.Protocols
	p.SetHTTP1(true)
	if a.sec.tls != nil {
		srv.TLSConfig = a.sec.tls.Clone()
		p.SetHTTP2(true)
	}
	if a.cfg.HTTP.H2C {
		p.SetUnencryptedHTTP2(true)
	}
	srv.Protocols = &p
}

// refusal is written to connections beyond --max-connections (cleartext
// only: a TLS client would not understand it).
var refusal = func() []byte {
	body := `{"error":"too many connections: the server is at its limit (--max-connections); retry later","code":"too_many_connections"}` + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// serve runs srv on ln (with TLS when configured), refusing connections
// beyond --max-connections and counting header timeouts.
func (a *App) serve(srv *http.Server, ln net.Listener) error {
	o := limit.ListenerOptions{
		Max:             a.cfg.HTTP.MaxConnections,
		OnRefuse:        func() { a.metrics.Rejected.WithLabelValues(reasonMaxConnections).Inc() },
		OnHeaderTimeout: func() { a.metrics.Rejected.WithLabelValues(reasonHeaderTimeout).Inc() },
	}
	if a.sec.tls == nil {
		o.Refusal = refusal
	}
	l := limit.NewListener(ln, o)
	prev := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		l.ConnState(c, st)
		if prev != nil {
			prev(c, st)
		}
	}
	var err error
	if a.sec.tls != nil {
		err = srv.ServeTLS(l, "", "")
	} else {
		err = srv.Serve(l)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
