package ws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/outage"
	"github.com/heraldpush/herald/internal/send"
	"github.com/heraldpush/herald/internal/transport"
)

// conn is one WebSocket connection's protocol, served by the engine: its
// turns (on the connection's owner) read and answer what the client sent,
// write the subscription's events as frames, ping an idle client and run
// the closing handshake. Goroutines exist only while there is work the
// owner must not block on: subscribing after a "resume" frame, and
// delivering client messages (one at a time, in order).
//
// Fields marked "owner" are touched by turns only; mu guards the others,
// which the goroutines hand back.
type conn struct {
	h             *Handler
	r             *http.Request // for Send's policy; nil when sends are off
	clientID      string
	topics        []string
	canSeePrivate func(string) bool

	// Owner.
	started     bool
	awaitResume bool       // resume=frame, and no resume frame yet
	closeWith   *closeWith // close at the first turn (a failed subscribe)
	closing     bool       // our close frame is sent: wait for the client's
	next        transport.Next
	timer       timerKind
	pinging     bool
	frames      frameReader

	mu         sync.Mutex // guards the fields below
	out        [][]byte   // frames for the client from the goroutines
	subDone    bool       // the resume frame's subscribe returned
	subRes     *hub.Subscription
	subErr     error
	work       []*send.Message // client messages to deliver, in order
	delivering bool            // a goroutine delivers work
	paused     bool            // reading is paused until work drains
	stopped    bool            // the connection is torn down
	ctx        context.Context // for the goroutines; ends at teardown
	cancel     context.CancelFunc
}

type closeWith struct {
	code   CloseCode
	reason string
}

// What the connection's one timer is for.
type timerKind uint8

const (
	timerNone   timerKind = iota
	timerResume           // the resume frame's deadline
	timerPong             // the pong's deadline
	timerClose            // the closing handshake's end
)

// closeWait bounds the wait for the client's close frame after ours.
const closeWait = 5 * time.Second

// maxPending is how many client messages may wait for delivery before
// the connection stops reading.
const maxPending = 16

// readBudget bounds what one turn reads, so that a client that keeps
// sending does not hold a worker.
const readBudget = 256 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

var authExpiredFrame = marshal(Frame{Type: "event", Event: transport.AuthExpiredEventType, Data: transport.AuthExpiredData})

func (s *conn) Turn(c *transport.Conn, b *transport.Batch, due transport.Due) transport.Next {
	s.next = transport.Continue
	if !s.started {
		s.started = true
		if s.closeWith != nil {
			s.close(c, b, s.closeWith.code, s.closeWith.reason)
		} else if s.awaitResume {
			s.setTimer(c, timerResume, or(s.h.ResumeTimeout, 10*time.Second))
		}
	}
	if due&transport.DueRead != 0 {
		s.read(c, b)
		if s.next != transport.Continue {
			return s.next
		}
	}
	s.takeOut(b)
	if due&transport.DueTimer != 0 {
		switch s.timer {
		case timerClose:
			return transport.End
		case timerResume:
			if s.awaitResume && !s.closing {
				s.close(c, b, CloseResumeTimeout, "no resume frame")
			}
		case timerPong:
			if s.pinging && !s.closing {
				s.h.logger().Info("websocket client did not answer a ping; closing")
				return transport.Abort
			}
		}
	}
	if s.closing {
		return s.next
	}
	s.takeSubscription(c, b)
	sub := c.Sub()
	if sub == nil {
		if due&transport.DueShutdown != 0 && !s.closing {
			s.close(c, b, CloseGoingAway, "server shutting down")
		}
		return s.next
	}
	if due&transport.DueExpired != 0 {
		b.Add(authExpiredFrame, 0)
		s.close(c, b, CloseAuthExpired, "token expired")
		return s.next
	}
	if !c.Pump(b, s) {
		code, reason := closeFor(sub.Err(), s.h.logger(), sub.Topics())
		s.close(c, b, code, reason)
		return s.next
	}
	if due&transport.DueKeepAlive != 0 && !s.pinging {
		b.Add(ws.CompiledPing, 0)
		s.pinging = true
		s.setTimer(c, timerPong, or(s.h.PingTimeout, 10*time.Second))
	}
	return s.next
}

// Events writes events as frames, each encoded once for every subscriber.
func (s *conn) Events(b *transport.Batch, evs []*hub.Event) {
	for _, ev := range evs {
		f := encode(ev)
		b.Event(f, len(f))
	}
}

func (s *conn) Closed(*transport.Conn) {
	s.mu.Lock()
	s.stopped = true
	s.work = nil
	s.out = nil
	cancel := s.cancel
	sub := s.subRes
	s.subRes = nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if sub != nil {
		sub.Close() // subscribed after a resume frame, never attached
	}
}

func (s *conn) setTimer(c *transport.Conn, k timerKind, d time.Duration) {
	s.timer = k
	c.SetTimer(time.Now().Add(d))
}

// close writes a close frame and starts the closing handshake: the
// connection ends when the client's close frame (or its FIN) arrives, or
// after closeWait.
func (s *conn) close(c *transport.Conn, b *transport.Batch, code CloseCode, reason string) {
	if s.closing {
		return
	}
	b.Add(closeFrame(code, reason), 0)
	s.closing = true
	s.pinging = false
	s.setTimer(c, timerClose, closeWait)
	if sub := c.Sub(); sub != nil {
		sub.Close() // nothing more is sent
	}
}

// closeFor returns the close code and reason for a subscription's end.
func closeFor(err error, log *slog.Logger, topics []string) (CloseCode, string) {
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

// subscribeClose returns how a connection whose subscribe failed closes;
// a failure to read history is reported through m (outage.Subscribe).
func subscribeClose(err error, m *metrics.Metrics) *closeWith {
	switch {
	case errors.Is(err, hub.ErrFinished):
		return &closeWith{CloseAlreadyFinished, "finished"}
	case errors.Is(err, hub.ErrClosed):
		return &closeWith{CloseGoingAway, "server shutting down"}
	}
	m.Failed(outage.Subscribe, err)
	return &closeWith{CloseInternal, "history unavailable"}
}

// takeOut moves the frames the goroutines produced to b.
func (s *conn) takeOut(b *transport.Batch) {
	s.mu.Lock()
	out := s.out
	s.out = nil
	s.mu.Unlock()
	for _, f := range out {
		b.Add(f, 0)
	}
}

// takeSubscription attaches the subscription a resume frame asked for,
// once it is made, or closes the connection if it failed.
func (s *conn) takeSubscription(c *transport.Conn, b *transport.Batch) {
	s.mu.Lock()
	done, sub, err := s.subDone, s.subRes, s.subErr
	s.subDone, s.subRes, s.subErr = false, nil, nil
	s.mu.Unlock()
	switch {
	case !done:
	case err != nil:
		cw := subscribeClose(err, s.h.Metrics)
		s.close(c, b, cw.code, cw.reason)
	default:
		c.Attach(sub)
	}
}

// reply hands a frame to the connection from a goroutine.
func (s *conn) reply(c *transport.Conn, v any) {
	f := marshal(v)
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.out = append(s.out, f)
	s.mu.Unlock()
	c.Wake()
}

// context returns the connection's context for its goroutines.
func (s *conn) context() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		if s.stopped {
			s.cancel()
		}
	}
	return s.ctx
}

// read reads what the client sent, frame by frame, without blocking.
func (s *conn) read(c *transport.Conn, b *transport.Batch) {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := *bp
	if s.frames.limit == 0 {
		s.frames.limit = or(s.h.MaxFrameBytes, 1<<20+64<<10)
	}
	if s.frames.pending() && !c.Paused() && !s.consume(c, b, nil) {
		return // frames kept while reading was paused
	}
	for total := 0; total < readBudget && !c.Paused(); {
		n, err := c.Read(buf)
		if n > 0 {
			total += n
			if !s.consume(c, b, buf[:n]) {
				return // the connection ends
			}
		}
		if err != nil {
			// The client is gone (or closed its side after our close
			// frame): nothing more will come.
			if !errors.Is(err, io.EOF) && !s.closing {
				s.h.logger().Debug("websocket read ended", "err", err)
			}
			s.next = transport.End
			return
		}
		if n == 0 {
			return
		}
	}
	// The budget is spent (or reading paused): the engine watches the
	// socket again after the turn, and the rest is read on another.
}

// consume handles the frames in data; it reports whether to go on reading.
func (s *conn) consume(c *transport.Conn, b *transport.Batch, data []byte) bool {
	if fail := s.frames.feed(data, func(op ws.OpCode, p []byte) bool {
		return s.frame(c, b, op, p) && !c.Paused()
	}); fail != nil {
		s.fail(c, b, fail.code, fail.reason)
	}
	return !s.closing && s.next == transport.Continue
}

// fail fails the connection (RFC 6455 §7.1.7) with code.
func (s *conn) fail(c *transport.Conn, b *transport.Batch, code CloseCode, reason string) {
	if s.closing {
		s.next = transport.End
		return
	}
	s.close(c, b, code, reason)
}

// frame handles a control frame or a whole message; it reports whether to
// go on.
func (s *conn) frame(c *transport.Conn, b *transport.Batch, op ws.OpCode, p []byte) bool {
	if op == ws.OpClose {
		return s.closeFrame(c, b, p)
	}
	if s.closing {
		return true // after our close frame, only the client's matters
	}
	switch op {
	case ws.OpPing:
		b.Add(ws.MustCompileFrame(ws.NewPongFrame(append([]byte(nil), p...))), 0)
	case ws.OpPong:
		if s.pinging {
			s.pinging = false
			if s.timer == timerPong {
				s.timer = timerNone
				c.SetTimer(time.Time{})
			}
		}
	case ws.OpText, ws.OpBinary:
		return s.message(c, b, op, p)
	}
	return true
}

// closeFrame handles the client's close frame: the answer to ours, or its
// own, which is echoed (RFC 6455 §5.5.1). The connection then ends.
func (s *conn) closeFrame(c *transport.Conn, b *transport.Batch, p []byte) bool {
	s.next = transport.End
	if s.closing {
		return false
	}
	switch {
	case len(p) == 0:
		b.Add(ws.CompiledClose, 0) // no status: none echoed
		s.closing = true
		return false
	case len(p) == 1:
		s.close(c, b, CloseProtocolError, "close frame with a one-byte payload")
		return false
	}
	code, reason := ws.ParseCloseFrameData(p)
	if err := ws.CheckCloseFrameData(code, reason); err != nil {
		if errors.Is(err, ws.ErrProtocolInvalidUTF8) {
			s.close(c, b, CloseInvalidPayload, "close reason is not valid UTF-8")
		} else {
			s.close(c, b, CloseProtocolError, err.Error())
		}
		return false
	}
	b.Add(closeFrame(CloseCode(code), ""), 0)
	s.closing = true
	return false
}

// message handles a whole client message; it reports whether to go on
// reading.
func (s *conn) message(c *transport.Conn, b *transport.Batch, op ws.OpCode, p []byte) bool {
	if op != ws.OpText {
		b.Add(marshal(errorFrame{Type: "error", Status: http.StatusBadRequest, Error: "binary frames are not supported: send JSON text frames"}), 0)
		return true
	}
	if !utf8.Valid(p) {
		// RFC 6455 §8.1: a text message that is not UTF-8 fails the
		// connection, with 1007.
		s.fail(c, b, CloseInvalidPayload, "text frame is not valid UTF-8")
		return false
	}
	var f clientFrame
	if err := send.DecodeStrict(p, &f); err != nil {
		s.replyError(b, "", http.StatusBadRequest, "%v", err)
		return true
	}
	switch f.Type {
	case "resume":
		if !s.awaitResume {
			s.replyError(b, "", http.StatusBadRequest, `unexpected "resume" frame: it is only accepted as the first frame of a connection made with resume=frame`)
			return true
		}
		s.awaitResume = false
		if s.timer == timerResume {
			s.timer = timerNone
			c.SetTimer(time.Time{})
		}
		id := ""
		if f.LastEventID != nil {
			id = *f.LastEventID
		}
		s.subscribe(c, id)
	case "send":
		if s.h.Send == nil {
			s.replyError(b, f.MsgID, http.StatusNotImplemented, "this server does not accept client messages")
			return true
		}
		return s.queue(c, &send.Message{ClientID: s.clientID, MsgID: f.MsgID, Topic: f.Topic, Event: f.Event, Data: f.Data})
	case "ping":
		b.Add(marshal(pongFrame{Type: "pong", T: f.T}), 0)
	case "":
		s.replyError(b, f.MsgID, http.StatusBadRequest, `missing "type" (one of "resume", "send", "ping")`)
	default:
		s.replyError(b, f.MsgID, http.StatusBadRequest, `unknown frame type %q (known: "resume", "send", "ping")`, f.Type)
	}
	return true
}

func (s *conn) replyError(b *transport.Batch, msgID string, status int, format string, args ...any) {
	b.Add(marshal(errorFrame{Type: "error", MsgID: msgID, Status: status, Error: fmt.Sprintf(format, args...)}), 0)
}

// subscribe subscribes from the position a resume frame gave, in a
// goroutine (reading history may take a while); the next turn attaches
// the subscription.
func (s *conn) subscribe(c *transport.Conn, lastID string) {
	ctx := s.context()
	started := s.h.goTask(func() {
		sub, err := s.h.Hub.Subscribe(ctx, hub.Request{Topics: s.topics, LastEventID: lastID, CanSeePrivate: s.canSeePrivate})
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			if sub != nil {
				sub.Close()
			}
			return
		}
		s.subDone, s.subRes, s.subErr = true, sub, err
		s.mu.Unlock()
		c.Wake()
	})
	if !started {
		s.mu.Lock()
		s.subDone, s.subErr = true, hub.ErrClosed
		s.mu.Unlock()
		c.Wake()
	}
}

// queue queues a client message for delivery; it reports whether to go on
// reading (not while maxPending messages wait).
func (s *conn) queue(c *transport.Conn, m *send.Message) bool {
	ctx := s.context()
	s.mu.Lock()
	s.work = append(s.work, m)
	start := !s.delivering
	s.delivering = true
	full := len(s.work) >= maxPending
	if full {
		s.paused = true
	}
	s.mu.Unlock()
	if full {
		c.PauseRead()
	}
	if start && !s.h.goTask(func() { s.deliver(ctx, c) }) {
		s.mu.Lock()
		s.delivering = false
		s.mu.Unlock()
	}
	return !full
}

// deliver delivers client messages one at a time, in the order they came,
// and answers each with an ack or an error; it ends when none is left.
func (s *conn) deliver(ctx context.Context, c *transport.Conn) {
	for {
		s.mu.Lock()
		if s.stopped || len(s.work) == 0 {
			s.delivering = false
			s.mu.Unlock()
			return
		}
		m := s.work[0]
		s.work[0] = nil
		s.work = s.work[1:]
		resume := s.paused && len(s.work) < maxPending/2
		if resume {
			s.paused = false
		}
		s.mu.Unlock()
		if resume {
			c.ResumeRead()
		}
		ack, err := s.h.Send.Deliver(ctx, s.r, "ws", m)
		if err != nil {
			f := errorFrame{Type: "error", MsgID: m.MsgID, Status: http.StatusInternalServerError, Error: err.Error()}
			var se *access.Error
			if errors.As(err, &se) {
				f.Status, f.Code = se.Status, se.Code
			}
			s.reply(c, f)
			continue
		}
		s.reply(c, ackFrame{Type: "ack", MsgID: ack.MsgID, ID: ack.ID, Duplicate: ack.Duplicate})
	}
}
