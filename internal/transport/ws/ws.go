// Package ws serves GET /ws: Herald's WebSocket transport. A connection
// follows topics on the same hub as SSE, with the same event ids, resume,
// herald.reset and retained/final semantics; events go out as JSON text
// frames (hub.Frame). Over the same connection the client sends messages
// ("send" frames), which are delivered once by a send.Service and
// acknowledged. docs/protocol.md describes the frames and close codes.
package ws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/eventstream"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/outage"
	"github.com/heraldpush/herald/internal/send"
)

// Handler serves WebSocket subscriptions. Its fields must not be changed
// after the first request. Close ends every connection.
type Handler struct {
	Hub *hub.Hub
	// Send delivers client messages; nil refuses "send" frames.
	Send *send.Service
	// MaxTopics bounds the topics of one connection.
	MaxTopics int
	// PingInterval is how often the server pings. Default 25s.
	PingInterval time.Duration
	// PingTimeout is how long a pong may take. Default 10s.
	PingTimeout time.Duration
	// WriteTimeout bounds each batch of writes; a client that cannot take
	// one in time is cut off. Default 10s.
	WriteTimeout time.Duration
	// ResumeTimeout bounds the wait for the first "resume" frame of a
	// connection made with resume=frame. Default 10s.
	ResumeTimeout time.Duration
	// MaxFrameBytes bounds one client frame. Default 1 MiB + 64 KiB.
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
	base   context.Context // cancelled by Close
	cancel context.CancelFunc
	mu     sync.Mutex // guards closed and conns.Add
	closed bool
	conns  sync.WaitGroup
}

func (h *Handler) init() {
	h.once.Do(func() { h.base, h.cancel = context.WithCancel(context.Background()) })
}

// Close makes new upgrades fail with 503, ends open connections with close
// code 1001 (clients reconnect and resume elsewhere) and waits for them.
func (h *Handler) Close() {
	h.init()
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.conns.Wait()
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
	h.init()
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
	req, err := eventstream.ParseRequest(r, h.MaxTopics)
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
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		access.Write(w, r, &access.Error{Status: http.StatusServiceUnavailable, Msg: "server is shutting down", RetryAfter: 1})
		return
	}
	h.conns.Add(1)
	h.mu.Unlock()
	defer h.conns.Done()

	jw := &jsonErrors{ResponseWriter: w, r: r}
	// The policy checked the page's Origin (access.FaceRules.CheckOrigin).
	c, err := websocket.Accept(jw, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		jw.flush()
		h.logger().Debug("websocket upgrade refused", "err", err)
		return
	}
	c.SetReadLimit(or(h.MaxFrameBytes, 1<<20+64<<10))
	cn := &conn{h: h, c: c, r: r, clientID: clientID, out: make(chan []byte, 16), work: make(chan *send.Message, 16), resume: make(chan string, 1)}
	cn.serve(req, resumeFrame, d)
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

// jsonErrors turns the plain-text error responses of websocket.Accept
// (a bad handshake) into Herald's JSON errors. It passes everything else
// through, and unwraps for the hijack.
type jsonErrors struct {
	http.ResponseWriter
	r      *http.Request
	status int
	msg    strings.Builder
}

func (w *jsonErrors) WriteHeader(status int) {
	if status >= 400 {
		w.status = status
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *jsonErrors) Write(p []byte) (int, error) {
	if w.status >= 400 {
		return w.msg.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

func (w *jsonErrors) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *jsonErrors) flush() {
	if w.status >= 400 {
		access.Write(w.ResponseWriter, w.r, access.Errorf(w.status, "", "%s", strings.TrimSpace(w.msg.String())))
	}
}

// conn is one WebSocket connection. Its goroutines: serve (the writer: it
// owns the subscription, writes every frame and starts the pings), the
// reader, and, from the first client message on, the send worker (delivers
// client messages in order). A ping in flight has a goroutine of its own.
type conn struct {
	h        *Handler
	c        *websocket.Conn
	r        *http.Request
	clientID string

	ctx    context.Context // ends when the connection is gone or done
	cancel context.CancelFunc
	wg     sync.WaitGroup // the goroutines besides serve
	worker sync.Once      // starts deliver

	out    chan []byte        // frames for the writer: acks, errors, pongs
	work   chan *send.Message // client messages for the worker
	resume chan string        // the position of a "resume" frame
}

func (cn *conn) serve(req eventstream.Request, resumeFrame bool, d access.Decision) {
	h := cn.h
	cn.ctx, cn.cancel = context.WithCancel(context.Background())
	defer cn.cancel()
	if h.Metrics != nil {
		g := h.Metrics.Connections.WithLabelValues("ws")
		g.Inc()
		defer g.Dec()
	}
	cn.wg.Add(1)
	go func() { defer cn.wg.Done(); cn.read(resumeFrame) }()

	code, reason := cn.run(req, resumeFrame, d)
	if code == 0 {
		_ = cn.c.CloseNow()
	} else {
		_ = cn.c.Close(code, reason)
	}
	cn.cancel()
	cn.wg.Wait()
}

// run writes the subscription until it ends and returns the close code
// and reason, or 0 when the connection is gone already.
func (cn *conn) run(req eventstream.Request, resumeFrame bool, d access.Decision) (websocket.StatusCode, string) {
	h := cn.h
	lastID := req.LastEventID
	if resumeFrame {
		t := time.NewTimer(or(h.ResumeTimeout, 10*time.Second))
		defer t.Stop()
	wait:
		for {
			select {
			case lastID = <-cn.resume:
				break wait
			case f := <-cn.out: // answers to frames sent before the resume
				if cn.write(f) != nil {
					return 0, ""
				}
			case <-t.C:
				return CloseResumeTimeout, "no resume frame"
			case <-cn.ctx.Done():
				return 0, ""
			case <-h.base.Done():
				return CloseGoingAway, "server shutting down"
			}
		}
	}
	sub, err := h.Hub.Subscribe(cn.ctx, hub.Request{Topics: req.Topics, LastEventID: lastID, CanSeePrivate: d.CanSeePrivate})
	switch {
	case errors.Is(err, hub.ErrFinished):
		return CloseAlreadyFinished, "finished"
	case errors.Is(err, hub.ErrClosed):
		return CloseGoingAway, "server shutting down"
	case err != nil:
		h.Metrics.Failed(outage.Subscribe, err)
		return CloseInternal, "history unavailable"
	}
	defer sub.Close()

	var expired <-chan time.Time
	if !d.Expires.IsZero() {
		t := time.NewTimer(time.Until(d.Expires))
		defer t.Stop()
		expired = t.C
	}
	ticker := time.NewTicker(or(h.PingInterval, 25*time.Second))
	defer ticker.Stop()
	var (
		batch    []*hub.Event
		frames   [][]byte
		wrote    uint64
		pinging  bool
		pingDone = make(chan error, 1)
	)
	defer func() {
		if h.Metrics != nil && wrote > 0 {
			h.Metrics.Delivered.WithLabelValues("ws").Add(float64(wrote))
		}
	}()
	for {
		select {
		case <-cn.ctx.Done():
			return 0, ""
		case <-h.base.Done():
			return CloseGoingAway, "server shutting down"
		case f := <-cn.out:
			if cn.write(f) != nil {
				return 0, ""
			}
			continue
		case <-ticker.C:
			if !pinging {
				pinging = true
				cn.wg.Add(1)
				go func() { defer cn.wg.Done(); pingDone <- cn.ping() }()
			}
			continue
		case err := <-pingDone:
			pinging = false
			if err != nil {
				h.logger().Info("websocket client did not answer a ping; closing", "err", err)
				return 0, ""
			}
			continue
		case <-expired:
			ev := hub.Frame{Type: "event", Event: eventstream.AuthExpiredEventType, Data: `{"reason":"token expired"}`}
			_ = cn.write(marshal(ev))
			return CloseAuthExpired, "token expired"
		case <-sub.Ready():
		}
		var open bool
		batch, open = sub.Pop(batch[:0])
		if len(batch) > 0 && (open || hub.Graceful(sub.Err())) {
			frames = frames[:0]
			for _, ev := range batch {
				frames = append(frames, ev.JSON())
			}
			clear(batch)
			if cn.write(frames...) != nil {
				return 0, ""
			}
			wrote += uint64(len(frames))
		}
		if !open {
			return closeFor(sub.Err(), h.logger(), sub.Topics())
		}
	}
}

func closeFor(err error, log *slog.Logger, topics []string) (websocket.StatusCode, string) {
	switch {
	case errors.Is(err, hub.ErrFinished):
		return CloseFinished, "finished"
	case errors.Is(err, hub.ErrSlowConsumer):
		log.Info("slow websocket subscriber cut off", "topics", topics)
		return CloseSlowConsumer, "slow consumer"
	case errors.Is(err, hub.ErrEpochChanged):
		return CloseEpochChanged, "epoch changed"
	case errors.Is(err, hub.ErrKicked):
		return CloseKicked, "disconnected by an administrator"
	}
	return CloseGoingAway, "server shutting down"
}

// write writes frames with one deadline; on failure the connection is
// closed.
func (cn *conn) write(frames ...[]byte) error {
	ctx, cancel := context.WithTimeout(cn.ctx, or(cn.h.WriteTimeout, 10*time.Second))
	defer cancel()
	for _, f := range frames {
		if err := cn.c.Write(ctx, websocket.MessageText, f); err != nil {
			return err
		}
	}
	return nil
}

// reply hands a frame to the writer.
func (cn *conn) reply(v any) {
	select {
	case cn.out <- marshal(v):
	case <-cn.ctx.Done():
	}
}

func (cn *conn) replyError(msgID string, status int, format string, args ...any) {
	cn.reply(errorFrame{Type: "error", MsgID: msgID, Status: status, Error: fmt.Sprintf(format, args...)})
}

// read reads client frames until the connection is closed. A bad frame is
// answered with an error frame; the connection stays open.
func (cn *conn) read(awaitResume bool) {
	defer cn.cancel()
	for {
		typ, data, err := cn.c.Read(context.Background())
		if err != nil {
			if s := websocket.CloseStatus(err); s == -1 && !errors.Is(err, context.Canceled) {
				cn.h.logger().Debug("websocket read ended", "err", err)
			}
			return
		}
		if typ != websocket.MessageText {
			cn.replyError("", http.StatusBadRequest, "binary frames are not supported: send JSON text frames")
			continue
		}
		if !utf8.Valid(data) {
			// RFC 6455 §8.1: a text frame that is not UTF-8 fails the
			// connection, with 1007.
			_ = cn.c.Close(websocket.StatusInvalidFramePayloadData, "text frame is not valid UTF-8")
			return
		}
		var f clientFrame
		if err := send.DecodeStrict(data, &f); err != nil {
			cn.replyError("", http.StatusBadRequest, "%v", err)
			continue
		}
		switch f.Type {
		case "resume":
			if !awaitResume {
				cn.replyError("", http.StatusBadRequest, `unexpected "resume" frame: it is only accepted as the first frame of a connection made with resume=frame`)
				continue
			}
			awaitResume = false
			id := ""
			if f.LastEventID != nil {
				id = *f.LastEventID
			}
			cn.resume <- id
		case "send":
			if cn.h.Send == nil {
				cn.replyError(f.MsgID, http.StatusNotImplemented, "this server does not accept client messages")
				continue
			}
			m := &send.Message{ClientID: cn.clientID, MsgID: f.MsgID, Topic: f.Topic, Event: f.Event, Data: f.Data}
			cn.worker.Do(func() {
				// The reader is counted in wg: this Add cannot race Wait.
				cn.wg.Add(1)
				go func() { defer cn.wg.Done(); cn.deliver() }()
			})
			select {
			case cn.work <- m:
			case <-cn.ctx.Done():
				return
			}
		case "ping":
			cn.reply(pongFrame{Type: "pong", T: f.T})
		case "":
			cn.replyError(f.MsgID, http.StatusBadRequest, `missing "type" (one of "resume", "send", "ping")`)
		default:
			cn.replyError(f.MsgID, http.StatusBadRequest, `unknown frame type %q (known: "resume", "send", "ping")`, f.Type)
		}
	}
}

// deliver delivers client messages one at a time, in the order they came,
// and answers each with an ack or an error.
func (cn *conn) deliver() {
	for {
		select {
		case <-cn.ctx.Done():
			return
		case m := <-cn.work:
			ack, err := cn.h.Send.Deliver(cn.ctx, cn.r, "ws", m)
			if err != nil {
				f := errorFrame{Type: "error", MsgID: m.MsgID, Status: http.StatusInternalServerError, Error: err.Error()}
				var se *access.Error
				if errors.As(err, &se) {
					f.Status, f.Code = se.Status, se.Code
				}
				cn.reply(f)
				continue
			}
			cn.reply(ackFrame{Type: "ack", MsgID: ack.MsgID, ID: ack.ID, Duplicate: ack.Duplicate})
		}
	}
}

// ping sends one ping and waits PingTimeout for the pong.
func (cn *conn) ping() error {
	ctx, cancel := context.WithTimeout(cn.ctx, or(cn.h.PingTimeout, 10*time.Second))
	defer cancel()
	return cn.c.Ping(ctx)
}
