// Package sse is Herald's Server-Sent Events transport: the
// text/event-stream responses of every face (/events, Mercure's subscribe,
// the chat and AI SDK streams, the demo), written by one Server through
// the shared pump and engine of internal/transport. The wire format (the
// response's headers, the opening comment, the retry hint, keep-alive
// comments, chunk framing on the lean path, herald.auth-expired) lives
// here, once.
package sse

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/transport"
	ssewire "github.com/heraldpush/herald/sse"
)

// Server writes text/event-stream responses for every face. Its fields
// must not be changed after the first response. The zero value is usable.
//
// A cleartext HTTP/1.1 response takes the lean path: once subscribed, the
// connection is taken over (hijacked), and an idle stream holds no
// goroutine, buffer or timer. Those streams outlive their requests: after
// closing the hub, call Shutdown to wait for them to end. HTTP/2, TLS and
// HTTP/1.0 responses are written from the handler's goroutine (the
// standard path), with the same bytes.
type Server struct {
	// Retry is the reconnection delay sent to clients (0: none).
	Retry time.Duration
	// KeepAlive is the interval of comment lines on an idle stream.
	// Default transport.DefaultKeepAlive.
	KeepAlive time.Duration
	// WriteTimeout bounds each write; a client that cannot take one in time
	// is cut off. Default transport.DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Metrics, if set, count connections and written events as transport
	// "sse".
	Metrics *metrics.Metrics
	// Logger for connection events. Default slog.Default().
	Logger *slog.Logger

	once   sync.Once
	engine *transport.Engine
}

// Engine returns the server's engine, created on first use.
func (s *Server) Engine() *transport.Engine {
	s.once.Do(func() {
		o := transport.Options{Name: "sse", KeepAlive: s.KeepAlive, WriteTimeout: s.WriteTimeout, Logger: s.Logger}
		if s.Metrics != nil {
			o.Connections = s.Metrics.Connections.WithLabelValues("sse")
			o.Delivered = s.Metrics.Delivered.WithLabelValues("sse")
		}
		s.engine = transport.NewEngine(o)
	})
	return s.engine
}

// Stream describes one response. The zero value is a plain stream.
type Stream struct {
	// Preamble, if set, is written right after the opening (the demo's
	// greeting, Mercure's prelude, the AI SDK stream's start).
	Preamble []byte
	// Encode, if set, gives each event's wire form in place of Encode (the
	// Mercure endpoint writes publishers' ids and retry fields; the AI SDK
	// stream, chunks); an event it returns nil for is not written. Use
	// hub.Event.Memo in it to encode an event once for all subscribers.
	// It is called on the stream's owner, one event at a time.
	Encode func(*hub.Event) []byte
	// NoRetry leaves the retry hint out (a stream whose client does not
	// reconnect by itself).
	NoRetry bool
	// Expires, if set, ends the stream with a herald.auth-expired event.
	Expires time.Time
	// Finish, if set, is called when the subscription ends, with why (see
	// hub.Subscription.Err); false cuts the connection without the
	// stream's clean end, so that the client sees a broken connection
	// (the AI SDK stream of an answer that did not reach its end).
	Finish func(err error) (clean bool)
	// Done, if set, runs in a goroutine of its own once the stream is
	// over (Mercure's subscription bookkeeping).
	Done func()
	// ContentType, if set, replaces the response's Content-Type (Durable
	// Streams clients expect "text/event-stream" without a charset).
	ContentType string
}

// SetHeaders sets the headers of a text/event-stream response.
func SetHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Del("Content-Length")
}

// Opening returns what a stream starts with: a comment, flushed at once so
// that the client knows it is connected, then the retry hint.
func Opening(retry time.Duration) []byte {
	b := []byte(": ok\n\n")
	if retry > 0 {
		b = ssewire.AppendRetry(b, retry)
	}
	return b
}

// NoContent answers 204 No Content, which makes an EventSource stop
// reconnecting: the subscription's topics are all finished and the client
// has their final events.
func NoContent(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// Refuse answers a request that cannot be served: err from the policy
// (an *access.Error), or from hub.Subscribe (204 for hub.ErrFinished,
// otherwise transport.Refusal).
func (s *Server) Refuse(w http.ResponseWriter, r *http.Request, err error) {
	var ae *access.Error
	switch {
	case errors.As(err, &ae):
		access.Write(w, r, ae)
	case errors.Is(err, hub.ErrFinished):
		NoContent(w)
	default:
		access.Write(w, r, transport.Refusal(err, s.Metrics))
	}
}

// Serve writes sub to w as a text/event-stream until the subscription
// ends, the client leaves or a write fails; it owns sub and closes it. On
// the lean path it returns as soon as the stream is handed to the engine.
func (s *Server) Serve(w http.ResponseWriter, r *http.Request, sub *hub.Subscription, st Stream) {
	e := s.Engine()
	SetHeaders(w.Header())
	if st.ContentType != "" {
		w.Header().Set("Content-Type", st.ContentType)
	}
	open := s.opening(st)
	f := &framing{encode: st.Encode, finish: st.Finish, done: st.Done}
	if transport.Lean(r) {
		if nc, _, err := transport.Hijack(w); err == nil {
			f.chunked = true
			// A stream that may be cut (Finish) does not announce its
			// close: Node's fetch takes the close of a "Connection: close"
			// response for the end of its body even when the last chunk
			// is missing, and a cut stream must not look whole.
			e.Serve(transport.ConnOptions{
				Conn: nc, Request: r, Head: responseHead(w.Header(), open, st.Finish == nil), HeadPayload: len(open),
				Sub: sub, Expires: st.Expires, Proto: f,
			})
			return
		}
	}
	w.WriteHeader(http.StatusOK)
	if e.ServeStandard(r.Context(), w, sub, f, st.Expires, open) {
		panic(http.ErrAbortHandler) // not a clean end: see Stream.Finish
	}
}

func (s *Server) opening(st Stream) []byte {
	retry := s.Retry
	if st.NoRetry {
		retry = 0
	}
	return append(Opening(retry), st.Preamble...)
}

// WriteEvents answers with a whole stream at once: the opening, then
// events (encoded), then the end. It is for a stream that is over already
// (a finished chat answer, served in one event).
func (s *Server) WriteEvents(w http.ResponseWriter, events ...[]byte) {
	s.WriteStream(w, Stream{}, events...)
}

// WriteStream is WriteEvents for a stream described by st: its
// ContentType, NoRetry and Preamble apply (its other fields do not).
func (s *Server) WriteStream(w http.ResponseWriter, st Stream, events ...[]byte) {
	e := s.Engine()
	SetHeaders(w.Header())
	if st.ContentType != "" {
		w.Header().Set("Content-Type", st.ContentType)
	}
	w.WriteHeader(http.StatusOK)
	b := s.opening(st)
	for _, ev := range events {
		b = append(b, ev...)
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(e.WriteTimeout()))
	if _, err := w.Write(b); err == nil {
		_ = rc.Flush()
	}
	if s.Metrics != nil {
		s.Metrics.Delivered.WithLabelValues("sse").Add(float64(len(events)))
	}
}

// Shutdown waits until every stream of the lean path has ended (the hub
// must have been closed, which ends their subscriptions) or ctx ends; then
// it closes the connections that remain. Streams on the standard path end
// with their requests, which http.Server.Shutdown waits for.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.Engine().Shutdown(ctx)
}

// responseHead returns the head of a lean response, written by hand: the
// status line, hdr, and the opening as the first chunk. The connection is
// closed when the stream ends, which announceClose says ("Connection:
// close").
func responseHead(hdr http.Header, opening []byte, announceClose bool) []byte {
	if hdr.Get("Date") == "" {
		hdr.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	hdr.Set("Transfer-Encoding", "chunked")
	if announceClose {
		hdr.Set("Connection", "close")
	}
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	_ = hdr.Write(&b)
	b.WriteString("\r\n")
	return appendChunk(b.Bytes(), opening)
}

// appendChunk appends p to dst as one HTTP/1.1 chunk.
func appendChunk(dst, p []byte) []byte {
	dst = strconv.AppendUint(dst, uint64(len(p)), 16)
	dst = append(dst, '\r', '\n')
	dst = append(dst, p...)
	return append(dst, '\r', '\n')
}
