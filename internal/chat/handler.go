package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/heraldpush/herald/internal/eventstream"
	"github.com/heraldpush/herald/internal/httpjson"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/llm"
	"github.com/heraldpush/herald/internal/outage"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/sse"
)

// MaxConversationLen is the longest conversation id accepted, in bytes.
const MaxConversationLen = 128

// CreateRequest is the body of POST /chat.
type CreateRequest struct {
	// Messages of the conversation, oldest first; at least one from the user.
	Messages []llm.Message `json:"messages"`
	// Model, if set, picks one of the allowed models.
	Model string `json:"model,omitempty"`
	// Conversation is an optional id the client groups its answers by; it
	// is echoed in the answer and in the done event.
	Conversation string `json:"conversation,omitempty"`
	// MaxTokens, if set, bounds the answer below the server's limit.
	MaxTokens int `json:"maxTokens,omitempty"`
}

// statusError is a refusal with its HTTP status.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &statusError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// HandleCreate serves POST /chat: it starts a generation and answers 201
// with its stream's id and URL.
func (s *Service) HandleCreate(w http.ResponseWriter, r *http.Request) {
	req, err := s.parseCreate(w, r)
	if err != nil {
		s.fail(w, err)
		return
	}
	id := newID()
	if err := s.allow(r, id); err != nil {
		s.fail(w, err)
		return
	}
	started, err := s.start(r.Context(), id, s.client(r), req.Conversation, llm.Request{Model: req.Model, Messages: req.Messages, MaxTokens: req.MaxTokens})
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Location", started.Stream)
	httpjson.Write(w, http.StatusCreated, started)
}

func (s *Service) parseCreate(w http.ResponseWriter, r *http.Request) (*CreateRequest, error) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, &statusError{http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Type %q: send application/json", ct)}
	}
	limit := int64(64 << 10)
	if s.limits.MaxPromptBytes > 0 {
		limit += 4 * int64(s.limits.MaxPromptBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &statusError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", mbe.Limit)}
		}
		return nil, badRequest("cannot read the request body: %v", err)
	}
	var req CreateRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, badRequest("malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("malformed JSON: trailing data after the value")
	}
	return &req, s.validate(&req)
}

// validate checks a request against the service's limits.
func (s *Service) validate(req *CreateRequest) error {
	l := &s.limits
	if len(req.Messages) == 0 {
		return badRequest(`"messages" is required: give at least one {"role": "user", "content": "..."}`)
	}
	if l.MaxMessages > 0 && len(req.Messages) > l.MaxMessages {
		return &statusError{http.StatusRequestEntityTooLarge, fmt.Sprintf("too many messages: %d (limit %d)", len(req.Messages), l.MaxMessages)}
	}
	size, users := 0, 0
	for i, m := range req.Messages {
		switch m.Role {
		case llm.RoleUser:
			users++
		case llm.RoleSystem, llm.RoleAssistant:
		case "":
			return badRequest("messages[%d]: missing \"role\" (user, assistant or system)", i)
		default:
			return badRequest("messages[%d]: unknown role %q (use user, assistant or system)", i, m.Role)
		}
		if strings.TrimSpace(m.Content) == "" {
			return badRequest("messages[%d]: empty \"content\"", i)
		}
		size += len(m.Content)
	}
	if users == 0 {
		return badRequest(`no message with "role": "user": there is nothing to answer`)
	}
	if l.MaxPromptBytes > 0 && size > l.MaxPromptBytes {
		return &statusError{http.StatusRequestEntityTooLarge, fmt.Sprintf("prompt too large: the messages hold %d bytes (limit %d)", size, l.MaxPromptBytes)}
	}
	if !s.allowedModel(req.Model) {
		allowed := append([]string{s.provider.Model()}, l.AllowedModels...)
		return badRequest("model %q is not available here (available: %s)", req.Model, strings.Join(allowed, ", "))
	}
	if len(req.Conversation) > MaxConversationLen || !utf8.ValidString(req.Conversation) || strings.ContainsFunc(req.Conversation, unicode.IsControl) {
		return badRequest(`"conversation" must be at most %d bytes of text without control characters`, MaxConversationLen)
	}
	if req.MaxTokens < 0 || req.MaxTokens > l.MaxTokens {
		return badRequest(`"maxTokens" must be between 1 and %d, got %d`, l.MaxTokens, req.MaxTokens)
	}
	return nil
}

// HandleStream serves GET /chat/stream/{id}: the stream as
// text/event-stream, resumed after Last-Event-ID (header) or lastEventID
// (query parameter) when given.
func (s *Service) HandleStream(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		s.fail(w, ErrNotFound)
		return
	}
	if err := s.allow(r, id); err != nil {
		s.fail(w, err)
		return
	}
	ctx := r.Context()
	topic := TopicPrefix + id
	var start pubsub.Position
	if g := s.lookup(id); g != nil {
		start = g.start
	} else {
		// Not started here: another node's, or from before a restart.
		p, known, _, err := s.firstPosition(ctx, id)
		if err != nil {
			s.fail(w, err)
			return
		}
		if !known {
			s.fail(w, ErrNotFound)
			return
		}
		start = p
	}
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("lastEventID")
	}
	if last == "" {
		// A new watcher: the whole answer. A finished one in one event.
		snap, err := s.hub.Broker().Read(ctx, pubsub.Query{Topics: []string{topic}})
		if err != nil {
			s.fail(w, fmt.Errorf("chat: history unavailable: %w", err))
			return
		}
		if _, fin := snap.Finals[topic]; fin && len(snap.Retained) > 0 {
			s.writeFinal(w, snap.Retained[len(snap.Retained)-1])
			return
		}
		last = start.String()
	}
	sub, err := s.hub.Subscribe(ctx, hub.Request{Topics: []string{topic}, LastEventID: last})
	switch {
	case errors.Is(err, hub.ErrFinished):
		// The client has the end already: make EventSource stop.
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
		return
	case err != nil:
		s.fail(w, err)
		return
	}
	defer sub.Close()
	eventstream.Stream(ctx, w, sub, s.stream)
}

// writeFinal writes a finished stream's final event as a whole stream.
func (s *Service) writeFinal(w http.ResponseWriter, m *pubsub.Message) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	b := []byte(": ok\n\n")
	if s.stream.Retry > 0 {
		b = sse.AppendRetry(b, s.stream.Retry)
	}
	b = append(b, hub.NewMessageEvent(m).SSE()...)
	rc := http.NewResponseController(w)
	timeout := s.stream.WriteTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	_ = rc.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := w.Write(b); err == nil {
		rc.Flush()
	}
	if s.stream.Metrics != nil {
		s.stream.Metrics.Delivered.WithLabelValues("sse").Inc()
	}
}

// CancelResult is the answer to a cancel request.
type CancelResult struct {
	ID      string `json:"id"`
	Stopped bool   `json:"stopped"`
}

// HandleCancel serves POST /chat/stream/{id}/cancel: it stops the
// generation and answers once the stream has its final done event.
func (s *Service) HandleCancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(id) {
		s.fail(w, ErrNotFound)
		return
	}
	if err := s.allow(r, id); err != nil {
		s.fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	if err := s.Stop(ctx, id); err != nil {
		s.fail(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, CancelResult{ID: id, Stopped: true})
}

// MethodNotAllowed answers a request whose method the path does not take.
func MethodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		httpjson.Errorf(w, http.StatusMethodNotAllowed, "method %s not allowed: use %s", r.Method, allow)
	}
}

// allow applies the Access hook to stream id.
func (s *Service) allow(r *http.Request, id string) error {
	if s.access == nil {
		return nil
	}
	if err := s.access(r, TopicPrefix+id); err != nil {
		var he *eventstream.HTTPError
		if errors.As(err, &he) {
			return he
		}
		return &statusError{http.StatusForbidden, err.Error()}
	}
	return nil
}

// fail answers err with its status and a JSON body.
func (s *Service) fail(w http.ResponseWriter, err error) {
	var se *statusError
	var he *eventstream.HTTPError
	switch {
	case errors.As(err, &se):
		httpjson.Error(w, se.status, se.msg)
	case errors.As(err, &he):
		httpjson.ErrorCode(w, he.Status, he.Code, he.Msg)
	case errors.Is(err, ErrNotFound):
		httpjson.Error(w, http.StatusNotFound, "no such chat stream (unknown id, or forgotten after --chat-retention)")
	case errors.Is(err, ErrFinished):
		httpjson.Error(w, http.StatusConflict, "the generation has already finished")
	case errors.Is(err, ErrNotHere):
		httpjson.Error(w, http.StatusConflict, "the generation is not running on this server (it was started on another node, or before a restart); it cannot be stopped from here")
	case errors.Is(err, ErrBusy):
		w.Header().Set("Retry-After", "5")
		httpjson.Error(w, http.StatusTooManyRequests, strings.TrimPrefix(err.Error(), "chat: "))
	case errors.Is(err, ErrClosed), errors.Is(err, hub.ErrClosed), errors.Is(err, pubsub.ErrClosed):
		w.Header().Set("Retry-After", "1")
		httpjson.Error(w, http.StatusServiceUnavailable, "server is shutting down")
	case errors.Is(err, context.DeadlineExceeded):
		httpjson.Error(w, http.StatusGatewayTimeout, "the generation did not stop in time")
	default:
		s.stream.Metrics.Failed(outage.Chat, err)
		w.Header().Set("Retry-After", "1")
		httpjson.Error(w, http.StatusServiceUnavailable, err.Error())
	}
}

// clientAddr is the default client key: the IP address of the peer.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
