// Package ws serves GET /ws: Herald's WebSocket transport. A connection
// follows topics on the same hub as SSE, with the same event ids, resume,
// herald.reset and retained/final semantics; events go out as JSON text
// frames (Frame). Over the same connection the client sends messages
// ("send" frames), which are delivered once by a send.Service and
// acknowledged. docs/protocol.md describes the frames and close codes.
//
// Connections are served by the engine of internal/transport (the lean
// path): after the handshake the connection is taken over, and an idle one
// holds no goroutine, buffer or timer. The server owns the read loop: the
// engine's epoll set reports what a client sends and the connection's turn
// reads and parses it without blocking (github.com/gobwas/ws gives the
// handshake and the frame primitives; RFC 6455's rules are applied in
// conn.go). Events are encoded once per event, as whole frames, and
// written with the other subscribers' by the engine's workers.
package ws

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/send"
	"github.com/heraldpush/herald/internal/transport"
)

// Handler serves WebSocket subscriptions. Its fields must not be changed
// after the first request. Close ends every connection.
type Handler struct {
	Hub *hub.Hub
	// Send delivers client messages; nil refuses "send" frames.
	Send *send.Service
	// MaxTopics bounds the topics of one connection.
	MaxTopics int
	// PingInterval is how long a connection may be idle (nothing written)
	// before the server pings. Default 25s.
	PingInterval time.Duration
	// PingTimeout is how long a pong may take. Default 10s.
	PingTimeout time.Duration
	// WriteTimeout bounds each batch of writes; a client that cannot take
	// one in time is cut off. Default 10s.
	WriteTimeout time.Duration
	// ResumeTimeout bounds the wait for the first "resume" frame of a
	// connection made with resume=frame. Default 10s.
	ResumeTimeout time.Duration
	// MaxFrameBytes bounds one client message. Default 1 MiB + 64 KiB.
	MaxFrameBytes int64
	// Disabled refuses every upgrade with 403, so that clients use SSE.
	Disabled bool
	// Metrics, if set, count connections and written frames as
	// transport "ws".
	Metrics *metrics.Metrics
	// Logger for connection events. Default slog.Default().
	Logger *slog.Logger
	// Access decides whether the request may subscribe to its topics (face
	// access.FaceWS: the policy also checks the page's Origin, since a
	// browser sends cookies with a WebSocket handshake and it has no
	// CORS), as for SSE. Nil lets every request in, from any origin,
	// without private events (unit tests). Client messages are decided
	// by Send's policy.
	Access access.Decider

	once   sync.Once
	engine *transport.Engine

	mu     sync.Mutex     // guards closed and tasks.Add
	closed bool           // new upgrades are refused
	done   bool           // no task may start
	tasks  sync.WaitGroup // connections' goroutines: subscribing, delivering
}

func (h *Handler) init() *transport.Engine {
	h.once.Do(func() {
		o := transport.Options{Name: "ws", KeepAlive: or(h.PingInterval, 25*time.Second), WriteTimeout: h.WriteTimeout, Logger: h.logger()}
		if h.Metrics != nil {
			o.Connections = h.Metrics.Connections.WithLabelValues("ws")
			o.Delivered = h.Metrics.Delivered.WithLabelValues("ws")
		}
		h.engine = transport.NewEngine(o)
	})
	return h.engine
}

// Shutdown makes new upgrades fail with 503, ends open connections (a
// subscription the closed hub ended closes with 1001 after its queued
// events; a connection still waiting for its resume frame closes with
// 1001) and waits for them until ctx ends; then it closes those left.
func (h *Handler) Shutdown(ctx context.Context) error {
	e := h.init()
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	err := e.Shutdown(ctx)
	h.mu.Lock()
	h.done = true
	h.mu.Unlock()
	h.tasks.Wait()
	return err
}

// Close is Shutdown without a deadline: it returns once every connection
// has ended (each ends within its close handshake's wait or its write
// timeout).
func (h *Handler) Close() { _ = h.Shutdown(context.Background()) }

// goTask runs f in a goroutine counted by Shutdown, unless the handler is
// done.
func (h *Handler) goTask(f func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return false
	}
	h.tasks.Add(1)
	go func() {
		defer h.tasks.Done()
		f()
	}()
	return true
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e := h.init()
	if h.Disabled {
		access.Write(w, r, access.Errorf(http.StatusForbidden, "ws_disabled", "WebSocket is disabled on this server: subscribe with GET /events (SSE) and send with POST /send"))
		return
	}
	if r.Method != http.MethodGet {
		access.WriteMethodNotAllowed(w, r, "GET")
		return
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		access.Write(w, r, access.Errorf(http.StatusUpgradeRequired, "", "/ws is a WebSocket endpoint: send a WebSocket upgrade request (or use GET /events for SSE)"))
		return
	}
	req, err := transport.ParseRequest(r, h.MaxTopics)
	if err != nil {
		access.Write(w, r, err)
		return
	}
	q := r.URL.Query()
	resumeFrame := false
	switch v := q.Get("resume"); v {
	case "":
	case "frame":
		resumeFrame = true
		if req.LastEventID != "" {
			access.Write(w, r, access.BadRequest(`give either a lastEventID (or Last-Event-ID) or resume=frame, not both`))
			return
		}
	default:
		access.Write(w, r, access.BadRequest(`resume: %q is not "frame"`, v))
		return
	}
	clientID := q.Get("clientId")
	if clientID == "" {
		clientID = newClientID()
	} else if err := send.CheckID("clientId", clientID); err != nil {
		access.Write(w, r, err)
		return
	}
	d, err := access.Ask(h.Access, r, access.Query{Action: access.Subscribe, Face: access.FaceWS, Topics: req.Topics})
	if err != nil {
		access.Write(w, r, err)
		return
	}
	if err := checkHandshake(w, r); err != nil {
		access.Write(w, r, err)
		return
	}
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		access.Write(w, r, &access.Error{Status: http.StatusServiceUnavailable, Msg: "server is shutting down", RetryAfter: 1})
		return
	}
	// The policy checked the page's Origin (access.FaceRules.CheckOrigin).
	nc, rw, _, err := ws.HTTPUpgrader{Timeout: e.WriteTimeout()}.Upgrade(r, w)
	if err != nil {
		if nc != nil {
			_ = nc.Close()
		}
		h.logger().Debug("websocket upgrade failed", "err", err)
		return
	}
	var early []byte
	if n := rw.Reader.Buffered(); n > 0 {
		early, _ = rw.Reader.Peek(n)
		early = append([]byte(nil), early...)
	}
	s := &conn{h: h, clientID: clientID, topics: req.Topics, canSeePrivate: d.CanSeePrivate, awaitResume: resumeFrame}
	if h.Send != nil {
		s.r = sendRequest(r)
	}
	var sub *hub.Subscription
	if !resumeFrame {
		sub, err = h.Hub.Subscribe(r.Context(), hub.Request{Topics: req.Topics, LastEventID: req.LastEventID, CanSeePrivate: d.CanSeePrivate})
		if err != nil {
			s.closeWith = subscribeClose(err, h.Metrics)
		}
	}
	e.Serve(transport.ConnOptions{Conn: nc, Request: r, Sub: sub, Expires: d.Expires, Read: true, Early: early, Proto: s})
}

// checkHandshake refuses, with a JSON error, a handshake the upgrade would
// fail (RFC 6455 §4.2.1): HTTP/1.1 or later, version 13, a key of 16
// bytes in base64.
func checkHandshake(w http.ResponseWriter, r *http.Request) *access.Error {
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 {
		return access.BadRequest("a WebSocket handshake needs HTTP/1.1 (got %s)", r.Proto)
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return access.BadRequest("unsupported WebSocket protocol version %q: only 13 is supported", v)
	}
	key, err := base64.StdEncoding.DecodeString(r.Header.Get("Sec-WebSocket-Key"))
	if err != nil || len(key) != 16 {
		return access.BadRequest("Sec-WebSocket-Key must be 16 bytes in base64")
	}
	return nil
}

// sendRequest returns what Send's policy reads of r to decide the
// connection's messages (the client's address as the trusted proxies give
// it, the token from the header, query or cookie, the origin and host),
// without the rest of the request: the connection keeps it for its whole
// life, and the whole request with its parsed headers, context and
// middleware state costs several KiB per idle connection.
func sendRequest(r *http.Request) *http.Request {
	s := &http.Request{
		Method: r.Method, Proto: r.Proto, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
		URL:    &url.URL{Path: r.URL.Path, RawQuery: r.URL.RawQuery},
		Header: make(http.Header, 4), Host: r.Host, RemoteAddr: r.RemoteAddr, TLS: r.TLS,
	}
	for _, k := range []string{"Authorization", "Cookie", "Origin", "Sec-Fetch-Site", "X-Forwarded-For", "Forwarded", "X-Real-Ip"} {
		if v := r.Header.Values(k); len(v) > 0 {
			s.Header[k] = v
		}
	}
	return s.WithContext(context.Background())
}

func newClientID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "ws-" + hex.EncodeToString(b[:])
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
