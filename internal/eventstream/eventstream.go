// Package eventstream serves GET /events: it turns a request into a hub
// subscription and writes it as a text/event-stream.
package eventstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/outage"
	"github.com/heraldpush/herald/sse"
)

// Handler serves text/event-stream subscriptions. Its fields must not be
// changed after the first request.
//
// Cleartext HTTP/1.1 subscriptions take the lean path (see lean.go): the
// connection is hijacked once subscribed, and an idle stream holds no
// goroutine, buffer or timer. Those streams outlive their requests: after
// closing the hub, call Shutdown to wait for them to end.
type Handler struct {
	Hub *hub.Hub
	// Retry is the reconnection delay sent to clients.
	Retry time.Duration
	// KeepAlive is the interval of comment lines on an idle stream.
	KeepAlive time.Duration
	// WriteTimeout bounds each write; a client that cannot take one in time
	// is cut off.
	WriteTimeout time.Duration
	// MaxTopics bounds the topics of one subscription.
	MaxTopics int
	// Metrics, if set, count connections and written events.
	Metrics *metrics.Metrics
	// Logger for connection events. Default slog.Default().
	Logger *slog.Logger
	// Access decides whether the request may subscribe to its topics
	// (face access.FaceEvents): it grants the private-event filter and the
	// credentials' expiry, or refuses with an *access.Error. Nil lets
	// every request in without private events (unit tests).
	Access access.Decider

	// The lean path (lean.go) for cleartext HTTP/1.1 subscriptions.
	leanOnce sync.Once
	lean     *leanState
}

// Request holds what a subscription request asks for.
type Request struct {
	Topics      []string
	LastEventID string
}

// ParseRequest reads the topics and the resume position of r: topics from
// repeated "topic" query parameters, the position from the Last-Event-ID
// header or else the lastEventID query parameter. Errors are
// *access.Error values (400).
func ParseRequest(r *http.Request, maxTopics int) (Request, error) {
	q := r.URL.Query()
	topics := q["topic"]
	if len(topics) == 0 {
		return Request{}, access.BadRequest(`missing "topic" query parameter`)
	}
	if maxTopics > 0 && len(topics) > maxTopics {
		return Request{}, &access.Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("too many topics: %d (limit %d)", len(topics), maxTopics), Reason: "max_topics"}
	}
	for _, t := range topics {
		if err := hub.ValidateTopic(t); err != nil {
			return Request{}, access.BadRequest("%v", err)
		}
	}
	id := r.Header.Get("Last-Event-ID")
	if id == "" {
		id = q.Get("lastEventID")
	}
	return Request{Topics: topics, LastEventID: id}, nil
}

// AuthExpiredEventType is sent when the subscriber's token expires.
const AuthExpiredEventType = "herald.auth-expired"

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		access.WriteMethodNotAllowed(w, r, "GET")
		return
	}
	req, err := ParseRequest(r, h.MaxTopics)
	if err != nil {
		access.Write(w, r, err)
		return
	}
	d, err := access.Ask(h.Access, r, access.Query{Action: access.Subscribe, Face: access.FaceEvents, Topics: req.Topics})
	if err != nil {
		access.Write(w, r, err)
		return
	}
	sub, err := h.Hub.Subscribe(r.Context(), hub.Request{Topics: req.Topics, LastEventID: req.LastEventID, CanSeePrivate: d.CanSeePrivate})
	if err != nil {
		if err := SubscribeError(w, err, h.Metrics); err != nil {
			access.Write(w, r, err)
		}
		return
	}
	if h.serveLean(w, r, sub, d.Expires) {
		return // the lean path owns sub and the connection now
	}
	defer sub.Close()
	Stream(r.Context(), w, sub, StreamOptions{
		Retry: h.Retry, KeepAlive: h.KeepAlive, WriteTimeout: h.WriteTimeout,
		Expires: d.Expires, Metrics: h.Metrics, Logger: h.logger(),
	})
}

// SubscribeError answers a failed hub.Subscribe: 204 No Content for a
// subscription whose topics are all finished (the spec's way to make an
// EventSource stop reconnecting), which it writes itself (returning nil);
// otherwise the *access.Error to answer with (503 while shutting down or
// when history cannot be read, 400 for an invalid topic). Every
// text/event-stream face answers the same way.
func SubscribeError(w http.ResponseWriter, err error, m *metrics.Metrics) *access.Error {
	switch {
	case errors.Is(err, hub.ErrFinished):
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
		return nil
	case errors.Is(err, hub.ErrClosed):
		return &access.Error{Status: http.StatusServiceUnavailable, Msg: "server is shutting down", RetryAfter: 1, Err: err}
	case errors.Is(err, hub.ErrInvalidTopic):
		return &access.Error{Status: http.StatusBadRequest, Msg: err.Error(), Err: err}
	}
	m.Failed(outage.Subscribe, err)
	return &access.Error{Status: http.StatusServiceUnavailable, Msg: "history unavailable: " + err.Error(), RetryAfter: 1, Err: err}
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

// StreamOptions configure Stream.
type StreamOptions struct {
	Retry        time.Duration
	KeepAlive    time.Duration
	WriteTimeout time.Duration
	// Expires, if set, ends the stream with a herald.auth-expired event.
	Expires time.Time
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// Preamble, if set, is written right after the headers (e.g. a
	// greeting event of the demo).
	Preamble []byte
	// Encode, if set, gives each event's wire form in place of Event.SSE
	// (the Mercure endpoint writes publishers' ids and retry fields); an
	// event it returns nil for is not written. Use hub.Event.Memo in it
	// to encode an event once for all subscribers.
	Encode func(*hub.Event) []byte
}

// Stream writes sub to w as a text/event-stream until the subscription
// ends, ctx ends, or a write fails. It sends the headers, flushes a comment
// at once, then the retry hint, and keep-alive comments when idle.
func Stream(ctx context.Context, w http.ResponseWriter, sub *hub.Subscription, o StreamOptions) {
	if o.KeepAlive <= 0 {
		o.KeepAlive = 15 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	hdr.Del("Content-Length")
	w.WriteHeader(http.StatusOK)

	rc := http.NewResponseController(w)
	var connected = []byte(": ok\n\n")
	if o.Retry > 0 {
		connected = sse.AppendRetry(connected, o.Retry)
	}
	connected = append(connected, o.Preamble...)
	if o.Metrics != nil {
		g := o.Metrics.Connections.WithLabelValues("sse")
		g.Inc()
		defer g.Dec()
	}
	write := func(b ...[]byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(o.WriteTimeout))
		var err error
		for _, p := range b {
			if _, err = w.Write(p); err != nil {
				break
			}
		}
		if err == nil {
			err = rc.Flush()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			sub.EndSlow() // the client did not take the write in time
		}
		return err == nil
	}
	if !write(connected) {
		return
	}

	ka := time.NewTicker(o.KeepAlive)
	defer ka.Stop()
	var expired <-chan time.Time
	if !o.Expires.IsZero() {
		t := time.NewTimer(time.Until(o.Expires))
		defer t.Stop()
		expired = t.C
	}
	var (
		batch []*hub.Event
		bufs  [][]byte
		wrote uint64
	)
	defer func() {
		if o.Metrics != nil && wrote > 0 {
			o.Metrics.Delivered.WithLabelValues("sse").Add(float64(wrote))
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ka.C:
			if !write([]byte(":\n\n")) {
				return
			}
			continue
		case <-expired:
			ev := sse.Event{Type: AuthExpiredEventType, Data: `{"reason":"token expired"}`}
			b, _ := ev.AppendTo(nil)
			write(b)
			return
		case <-sub.Ready():
		}
		var open bool
		batch, open = sub.Pop(batch[:0])
		if len(batch) > 0 && (open || hub.Graceful(sub.Err())) {
			bufs = bufs[:0]
			for _, ev := range batch {
				if o.Encode == nil {
					bufs = append(bufs, ev.SSE())
				} else if b := o.Encode(ev); b != nil {
					bufs = append(bufs, b)
				}
			}
			clear(batch)
			if !write(bufs...) {
				return
			}
			wrote += uint64(len(bufs))
			ka.Reset(o.KeepAlive)
		}
		if !open {
			if err := sub.Err(); errors.Is(err, hub.ErrSlowConsumer) {
				o.Logger.Info("slow subscriber cut off", "topics", sub.Topics())
			}
			return
		}
	}
}
