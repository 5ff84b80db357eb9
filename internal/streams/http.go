package streams

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/transport/sse"
	"github.com/heraldpush/herald/pubsub"
)

// Handler serves the protocol under Prefix: PUT creates, POST appends (and
// closes), DELETE deletes, HEAD describes, GET reads (catch-up, long-poll,
// SSE). Every request asks Access: reads as Subscribe, writes as Publish,
// on the face access.FaceStreams and the stream's topic ("ds/<path>").
type Handler struct {
	// Service holds the streams.
	Service *Service
	// Access decides each request (nil: allow all, for tests of the
	// handler alone).
	Access access.Decider
	// SSE writes live SSE reads through the shared transport.
	SSE *sse.Server
	// Prefix is the URL path the stream paths follow ("/v1/stream/").
	Prefix string
	// LongPollTimeout is how long a long-poll waits (default 30 s).
	LongPollTimeout time.Duration
	// SSEMaxAge is how long an SSE read stays open before it is ended
	// cleanly (default 60 s); the client reconnects from its last offset.
	SSEMaxAge time.Duration
	// MaxBody bounds a create's or an append's body (default 8 MiB).
	MaxBody int64
	// ChunkBytes bounds the data of one catch-up response (default 8 MiB;
	// a response holds at least one append).
	ChunkBytes int
	// ReadBuffer is how many bytes of a catch-up response are copied from
	// a store that hands its data over without copies (the embedded bolt
	// store: pubsub.TopicStreamer) per read transaction, into a buffer
	// that is written out between transactions (default 1 MiB). It bounds
	// how long a read holds a transaction open, whatever the client's pace.
	ReadBuffer int
	// Private marks reads "private" in Cache-Control (streams read with
	// credentials); otherwise "public".
	Private bool
}

func (h *Handler) chunk() int {
	if h.ChunkBytes > 0 {
		return h.ChunkBytes
	}
	return 8 << 20
}

func (h *Handler) sseMaxAge() time.Duration {
	if h.SSEMaxAge > 0 {
		return h.SSEMaxAge
	}
	return time.Minute
}

func (h *Handler) longPoll() time.Duration {
	if h.LongPollTimeout > 0 {
		return h.LongPollTimeout
	}
	return 30 * time.Second
}

// ServeHTTP serves one request on a stream.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.MaxBody <= 0 {
		h.MaxBody = 8 << 20
	}
	hdr := w.Header()
	// Protocol §10.7: on every response, errors included.
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cross-Origin-Resource-Policy", "cross-origin")
	path := strings.TrimPrefix(r.URL.Path, h.Prefix)
	topic := TopicPrefix + path
	if path == "" || path == r.URL.Path {
		access.Write(w, r, access.Errorf(http.StatusNotFound, "", "no stream path: use %s<path>", h.Prefix))
		return
	}
	if err := hub.ValidateTopic(topic); err != nil {
		access.Write(w, r, access.BadRequest("invalid stream path: %v", err))
		return
	}
	var action access.Action
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		action = access.Subscribe
	case http.MethodPut, http.MethodPost, http.MethodDelete:
		action = access.Publish
	default:
		access.WriteMethodNotAllowed(w, r, "GET, HEAD, PUT, POST, DELETE")
		return
	}
	if _, err := access.Ask(h.Access, r, access.Query{Action: action, Face: access.FaceStreams, Topics: []string{topic}}); err != nil {
		access.Write(w, r, err)
		return
	}
	switch r.Method {
	case http.MethodGet:
		h.get(w, r, topic)
	case http.MethodHead:
		h.head(w, r, topic)
	case http.MethodPut:
		h.put(w, r, topic)
	case http.MethodPost:
		h.post(w, r, topic)
	case http.MethodDelete:
		h.delete(w, r, topic)
	}
}

// fail answers err: a refusal with its protocol headers, or an access
// error, or a 503 for a broker that cannot be reached.
func fail(w http.ResponseWriter, r *http.Request, err error) {
	var rf *refusal
	if errors.As(err, &rf) {
		for _, kv := range rf.hdr {
			w.Header().Set(kv[0], kv[1])
		}
		access.Write(w, r, &access.Error{Status: rf.status, Msg: rf.msg})
		return
	}
	var ae *access.Error
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, pubsub.ErrUnavailable) || errors.Is(err, pubsub.ErrClosed):
		err = &access.Error{Status: http.StatusServiceUnavailable, Msg: "the streams broker is unavailable", RetryAfter: 1, Err: err}
	case errors.Is(err, pubsub.ErrTooLarge):
		err = &access.Error{Status: http.StatusRequestEntityTooLarge, Msg: "the body is larger than the streams broker accepts in one append: " + err.Error(), Err: err}
	case errors.Is(err, pubsub.ErrEpochChanged):
		err = &access.Error{Status: http.StatusGone, Msg: "the data at this offset is gone: the log's epoch changed; read from -1", Err: err}
	}
	access.Write(w, r, err)
}

// setMeta sets the headers that describe a stream.
func setMeta(hdr http.Header, in Info) {
	hdr.Set("Content-Type", in.ContentType)
	hdr.Set("Stream-Next-Offset", in.TailOffset().String())
	if in.Closed {
		hdr.Set("Stream-Closed", "true")
	}
}

func (h *Handler) head(w http.ResponseWriter, r *http.Request, topic string) {
	in, err := h.Service.Stat(r.Context(), topic, false)
	if err != nil {
		fail(w, r, err)
		return
	}
	hdr := w.Header()
	setMeta(hdr, in)
	if in.TTL >= 0 {
		hdr.Set("Stream-TTL", formatInt(in.TTL))
	}
	if in.ExpiresAt != "" {
		hdr.Set("Stream-Expires-At", in.ExpiresAt)
	}
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func (h *Handler) put(w http.ResponseWriter, r *http.Request, topic string) {
	req, err := h.parseCreate(w, r)
	if err != nil {
		fail(w, r, err)
		return
	}
	if err := h.parseFork(r, &req); err != nil {
		fail(w, r, err)
		return
	}
	in, created, err := h.create(r, topic, req)
	if err != nil {
		fail(w, r, err)
		return
	}
	setMeta(w.Header(), in)
	if !created {
		w.WriteHeader(http.StatusOK)
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	w.Header().Set("Location", scheme+"://"+r.Host+r.URL.EscapedPath())
	w.WriteHeader(http.StatusCreated)
}

func (h *Handler) post(w http.ResponseWriter, r *http.Request, topic string) {
	req, err := h.parseAppend(w, r)
	if err != nil {
		fail(w, r, err)
		return
	}
	res, err := h.Service.appendTo(r.Context(), topic, req)
	hdr := w.Header()
	if res.producer {
		hdr.Set("Producer-Epoch", formatInt(res.epoch))
		if err == nil {
			hdr.Set("Producer-Seq", formatInt(res.seq))
		}
	}
	if err != nil {
		fail(w, r, err)
		return
	}
	hdr.Set("Stream-Next-Offset", res.tail.String())
	if res.closed {
		hdr.Set("Stream-Closed", "true")
	}
	w.WriteHeader(res.status)
}

func (h *Handler) delete(w http.ResponseWriter, r *http.Request, topic string) {
	if err := h.Service.Delete(r.Context(), topic); err != nil {
		fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }
