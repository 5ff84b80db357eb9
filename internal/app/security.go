package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/clientip"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/cors"
	"github.com/heraldpush/herald/internal/limit"
	"github.com/heraldpush/herald/internal/reqlife"
)

// Rejection reasons of the herald_requests_rejected_total metric that this
// file counts (the policy counts its own: see access.Error.MetricReason).
const (
	reasonMaxConnections    = "max_connections"
	reasonMaxIdlePerIP      = "max_idle_connections_per_ip"
	reasonHeaderTooLarge    = "header_too_large"
	reasonHeaderTimeout     = "header_timeout"
	reasonBadPath           = "bad_path"
	codeRequestHeadersLarge = "headers_too_large"
	codeTooManyConnections  = access.CodeTooManyConnections
	reasonBodyTimeout       = "body_timeout"
)

// security holds the App's access policy, CORS and TLS, built once from the
// configuration by initSecurity.
type security struct {
	authz          *auth.Authorizer
	policy         *access.Policy
	cors           *cors.Policy
	trusted        []netip.Prefix
	tls            *tls.Config // nil: cleartext
	maxHeaderBytes int
}

// initSecurity builds the verifiers, the access policy and CORS from the
// configuration, and logs the security posture.
func (a *App) initSecurity(ctx context.Context) error {
	c := &a.cfg
	s := &security{
		cors:           cors.New(c.HTTP.CORSOrigins),
		maxHeaderBytes: int(c.HTTP.MaxHeaderBytes),
	}
	trusted, err := config.ParsePrefixes(c.HTTP.TrustedProxies)
	if err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	s.trusted = trusted

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
	s.policy = access.New(access.Options{
		Auth:           s.authz,
		AllowAnonymous: c.Auth.AllowAnonymous,
		Leeway:         c.Auth.Leeway,
		Proxies:        clientip.Resolver{Trusted: trusted},
		CORS:           s.cors,
		WSOrigins:      c.WS.Origins,
		AllowedHosts:   c.HTTP.AllowedHosts,
		ListenAddr:     c.Core.Addr,
		AdminToken:     c.Ops.AdminToken,
		MaxPerIP:       c.HTTP.MaxConnectionsPerIP,
		MaxPerSubject:  c.HTTP.MaxConnectionsPerSubject,
		PublishRate:    c.HTTP.PublishRate,
		PublishBurst:   c.HTTP.PublishBurst,
		Rejected:       func(reason string) { a.metrics.Rejected.WithLabelValues(reason).Inc() },
		Logger:         a.log,
	})

	if c.HTTP.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.HTTP.TLSCert, c.HTTP.TLSKey)
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	a.sec = s

	switch {
	case s.policy.DevMode():
		a.log.Warn("DEVELOPMENT MODE: no JWT key is configured. Anyone may subscribe, only loopback clients may publish, and private events reach no one. Set --jwt-key (see docs/security.md) before exposing Herald.")
	default:
		a.log.Info("token authentication on",
			"publishers", keyKind(c.Auth.PublisherKey()), "subscribers", keyKind(c.Auth.SubscriberKey()),
			"anonymous_subscribers", s.policy.AnonymousSubscribers())
		if s.authz.Publisher == nil {
			a.log.Warn("no publisher key: only loopback clients may publish (set --publisher-jwt-key or --jwt-key)")
		}
		if c.Demo.Enabled {
			a.log.Warn("the demo is on: anyone may broadcast to its topic and start its tasks (bounded by --demo-max-message-bytes and --publish-rate); turn it off with --demo=false on a public server")
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
		return "jwks " + config.RedactURL(k.JWKSURL)
	case k.Key != "" || k.KeyFile != "":
		if k.Alg != "" {
			return "key (" + k.Alg + ")"
		}
		return "key"
	}
	return "none (loopback only)"
}

// wrap adds the middleware every request goes through, outermost first:
// the request's identity (access.Policy.Middleware: client address, Host,
// Origin); request log (with credentials redacted) and panic recovery;
// CORS; header size and path checks. The router applies each route's
// policy entry after them (per-client limits, decisions).
func (a *App) wrap(h http.Handler) http.Handler {
	h = a.sanitize(h)
	h = a.sec.cors.Handler(h)
	h = a.logRequests(h)
	return a.sec.policy.Middleware(h)
}

// sanitize refuses requests whose line and headers exceed
// --max-header-bytes (431) and paths that are not canonical (dot segments,
// empty segments, control characters: 400), with JSON bodies. Go's server
// itself answers plain 431 beyond a hard cap of four times the limit.
func (a *App) sanitize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := headerSize(r); n > a.sec.maxHeaderBytes {
			access.Write(w, r, &access.Error{Status: http.StatusRequestHeaderFieldsTooLarge, Code: codeRequestHeadersLarge, Reason: reasonHeaderTooLarge,
				Msg: fmt.Sprintf("request line and headers are %d bytes, over the limit of %d (--max-header-bytes)", n, a.sec.maxHeaderBytes)})
			return
		}
		if msg := checkPath(r.URL); msg != "" {
			access.Write(w, r, &access.Error{Status: http.StatusBadRequest, Code: "bad_path", Reason: reasonBadPath, Msg: msg})
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
			return n, &access.Error{Status: http.StatusRequestTimeout, Code: access.CodeBodyTimeout, Reason: reasonBodyTimeout,
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
					// An aborted response (the AI SDK stream cut off
					// mid-answer, a reverse proxy) still ends the
					// request: release its slots.
					life.Returned()
					panic(v)
				}
				a.log.Error("handler panic", "method", r.Method, "url", auth.Redacted(r.URL), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !rec.wrote {
					access.Write(rec, r, access.Errorf(http.StatusInternalServerError, "", "internal error"))
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
					slog.Int("status", rec.statusCode()), {}, {}, slog.String("client", a.client(r)),
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

// client returns r's client address for the request log.
func (a *App) client(r *http.Request) string {
	return a.sec.policy.Identify(r).ClientString()
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

// refusal and refusalIdle are written to connections beyond
// --max-connections and --max-idle-connections-per-ip (cleartext only: a
// TLS client would not understand them).
var (
	refusal     = rawRefusal("too many connections: the server is at its limit (--max-connections); retry later")
	refusalIdle = rawRefusal("too many connections from your address that serve no request (--max-idle-connections-per-ip): reuse or close them")
)

func rawRefusal(msg string) []byte {
	body := `{"error":"` + msg + `","code":"` + codeTooManyConnections + `"}` + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}

// serve runs srv on ln (with TLS when configured), refusing connections
// beyond --max-connections and counting header timeouts.
func (a *App) serve(srv *http.Server, ln net.Listener) error {
	o := limit.ListenerOptions{
		Max:             a.cfg.HTTP.MaxConnections,
		MaxIdlePerAddr:  a.cfg.HTTP.MaxIdleConnectionsPerIP,
		Exempt:          a.sec.trusted,
		OnRefuse:        func() { a.metrics.Rejected.WithLabelValues(reasonMaxConnections).Inc() },
		OnRefuseIdle:    func() { a.metrics.Rejected.WithLabelValues(reasonMaxIdlePerIP).Inc() },
		OnHeaderTimeout: func() { a.metrics.Rejected.WithLabelValues(reasonHeaderTimeout).Inc() },
	}
	if a.sec.tls == nil {
		o.Refusal, o.RefusalIdle = refusal, refusalIdle
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
