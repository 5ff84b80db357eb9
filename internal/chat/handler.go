package chat

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/httpjson"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/llm"
	"github.com/heraldpush/herald/internal/outage"
	"github.com/heraldpush/herald/internal/transport"
	"github.com/heraldpush/herald/internal/transport/sse"
	"github.com/heraldpush/herald/pubsub"
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

func badRequest(format string, args ...any) error { return access.BadRequest(format, args...) }

func tooLarge(format string, args ...any) error {
	return access.Errorf(http.StatusRequestEntityTooLarge, access.CodeTooLarge, format, args...)
}

// HandleCreate serves POST /chat: it starts a generation and answers 201
// with its stream's id and URL.
func (s *Service) HandleCreate(w http.ResponseWriter, r *http.Request) {
	req, err := s.parseCreate(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	started, err := s.StartRequest(r, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", started.Stream)
	httpjson.Write(w, http.StatusCreated, started)
}

func (s *Service) parseCreate(w http.ResponseWriter, r *http.Request) (*CreateRequest, error) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, access.Errorf(http.StatusUnsupportedMediaType, "", "unsupported Content-Type %q: send application/json", ct)
	}
	body, err := access.ReadBody(w, r, s.BodyLimit())
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(body) {
		return nil, badRequest("malformed JSON: the body is not valid UTF-8")
	}
	var req CreateRequest
	if err := httpjson.DecodeStrict(body, &req); err != nil {
		return nil, badRequest("%v", err)
	}
	return &req, nil // StartRequest checks it against the limits
}

// validate checks a request against the service's limits.
func (s *Service) validate(req *CreateRequest) error {
	l := &s.limits
	if len(req.Messages) == 0 {
		return badRequest(`"messages" is required: give at least one {"role": "user", "content": "..."}`)
	}
	if l.MaxMessages > 0 && len(req.Messages) > l.MaxMessages {
		return tooLarge("too many messages: %d (limit %d)", len(req.Messages), l.MaxMessages)
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
		return tooLarge("prompt too large: the messages hold %d bytes (limit %d)", size, l.MaxPromptBytes)
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
		s.fail(w, r, ErrNotFound)
		return
	}
	d, err := s.ask(r, access.Subscribe, id, "")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	topic := TopicPrefix + id
	start, err := s.streamStart(ctx, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	last := transport.LastEventID(r)
	if last == "" {
		// A new watcher: the whole answer. A finished one in one event.
		snap, err := s.hub.Broker().Read(ctx, pubsub.Query{Topics: []string{topic}})
		if err != nil {
			s.fail(w, r, fmt.Errorf("chat: history unavailable: %w", err))
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
		sse.NoContent(w)
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	// Like /events, the stream ends with herald.auth-expired when the
	// token does.
	s.stream.Serve(w, r, sub, sse.Stream{Expires: d.Expires})
}

// writeFinal writes a finished stream's final event as a whole stream.
func (s *Service) writeFinal(w http.ResponseWriter, m *pubsub.Message) {
	s.stream.WriteEvents(w, sse.Encode(hub.NewMessageEvent(m)))
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
		s.fail(w, r, ErrNotFound)
		return
	}
	if _, err := s.Allow(r, access.Cancel, id); err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	if err := s.Stop(ctx, id); err != nil {
		s.fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusOK, CancelResult{ID: id, Stopped: true})
}

// MethodNotAllowed answers a request whose method the path does not take.
func MethodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { access.WriteMethodNotAllowed(w, r, allow) }
}

// ask asks the policy whether r may do action to stream id (whose owner,
// for a cancel, is owner when known).
func (s *Service) ask(r *http.Request, action access.Action, id, owner string) (access.Decision, error) {
	d, err := access.Ask(s.access, r, access.Query{Action: action, Face: access.FaceChat, Topics: []string{TopicPrefix + id}, Owner: owner})
	if err == nil && d.Client == "" {
		d.Client = "unknown"
	}
	return d, err
}

// fail answers err: an *access.Error as it is, the service's errors with
// their statuses.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *access.Error
	switch {
	case errors.As(err, &e):
	case errors.Is(err, ErrNotFound):
		e = access.Errorf(http.StatusNotFound, "", "no such chat stream (unknown id, or forgotten after --chat-retention)")
	case errors.Is(err, ErrFinished):
		e = access.Errorf(http.StatusConflict, "", "the generation has already finished")
	case errors.Is(err, ErrNotHere):
		e = access.Errorf(http.StatusConflict, "", "the generation is not running on this server (it was started on another node, or before a restart); it cannot be stopped from here")
	case errors.Is(err, ErrBusy):
		e = &access.Error{Status: http.StatusTooManyRequests, Msg: strings.TrimPrefix(err.Error(), "chat: "), RetryAfter: 5}
	case errors.Is(err, ErrClosed), errors.Is(err, hub.ErrClosed), errors.Is(err, pubsub.ErrClosed):
		e = &access.Error{Status: http.StatusServiceUnavailable, Msg: "server is shutting down", RetryAfter: 1}
	case errors.Is(err, context.DeadlineExceeded):
		e = access.Errorf(http.StatusGatewayTimeout, "", "the generation did not stop in time")
	default:
		s.stream.Metrics.Failed(outage.Chat, err)
		e = &access.Error{Status: http.StatusServiceUnavailable, Msg: err.Error(), RetryAfter: 1}
	}
	access.Write(w, r, e)
}
