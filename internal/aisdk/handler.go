package aisdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/heraldpush/herald/internal/access"

	"github.com/heraldpush/herald/internal/chat"
	"github.com/heraldpush/herald/internal/httpjson"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/transport/sse"
)

// Options configure a Handler.
type Options struct {
	// Chat runs the generations and keeps their streams. Required.
	Chat *chat.Service
	// Stream writes the responses (the server's, shared by every face);
	// nil: a server of its own with the defaults. The UI message stream
	// has no retry hint (it has no reconnection of its own).
	Stream *sse.Server
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Handler serves the AI SDK's chat endpoints. Create it with New; its
// methods are safe for concurrent use.
type Handler struct {
	chat   *chat.Service
	stream *sse.Server
	log    *slog.Logger
	active *activeIndex
}

// New returns a Handler.
func New(o Options) (*Handler, error) {
	if o.Chat == nil {
		return nil, errors.New("aisdk: Chat is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Stream == nil {
		o.Stream = &sse.Server{Logger: o.Logger}
	}
	return &Handler{chat: o.Chat, stream: o.Stream, log: o.Logger, active: newActiveIndex()}, nil
}

// HandleChat serves POST /ai/chat: it starts a generation for the chat's
// messages and answers with its UI message stream. The answer becomes the
// chat's active answer; one that was still running for the chat is stopped
// (its partial text kept), as the stop endpoint would.
func (h *Handler) HandleChat(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r, true)
	if !ok {
		return
	}
	req, creq, err := parseRequest(body)
	if err != nil {
		access.Write(w, r, access.BadRequest("%v", err))
		return
	}
	started, err := h.chat.StartRequest(r, creq)
	if err != nil {
		h.chat.WriteError(w, r, err)
		return
	}
	prev, hadPrev := h.active.get(req.ID)
	done := h.chat.Done(started.ID)
	if done == nil {
		// Forgotten already (a zero --chat-retention and a very short
		// answer): nothing to resume.
		c := make(chan struct{})
		close(c)
		done = c
	}
	h.active.set(req.ID, answer{id: started.ID, done: done})
	if hadPrev && prev.id != started.ID {
		h.stop(r.Context(), prev.id)
	}
	sub, err := h.chat.Follow(r.Context(), started.ID)
	if err != nil {
		h.chat.WriteError(w, r, err)
		return
	}
	h.serve(w, r, sub, started.ID, nil)
}

// HandleStream serves GET /ai/chat/{id}/stream: the chat's active answer,
// replayed from its start and followed to its end, or 204 No Content when
// the chat has no answer running on this node.
func (h *Handler) HandleStream(w http.ResponseWriter, r *http.Request) {
	a, ok := h.active.get(r.PathValue("id"))
	if _, err := h.chat.Allow(r, access.Subscribe, a.id); err != nil {
		h.chat.WriteError(w, r, err)
		return
	}
	if !ok {
		sse.NoContent(w)
		return
	}
	sub, err := h.chat.Follow(r.Context(), a.id)
	if err != nil {
		h.chat.WriteError(w, r, err)
		return
	}
	// The history so far, which the subscription has queued already. The
	// answer may have ended since the lookup: then it holds the end, and
	// there is nothing left to resume.
	prelude, open := sub.Pop(nil)
	if !open {
		sub.Close()
		if err := sub.Err(); err != nil && !errors.Is(err, hub.ErrFinished) {
			h.chat.WriteError(w, r, err)
			return
		}
		sse.NoContent(w)
		return
	}
	h.serve(w, r, sub, a.id, prelude)
}

// StopRequest is the optional body of POST /ai/chat/{id}/stop, as the AI
// SDK's documentation sends it.
type StopRequest struct {
	// ActiveStreamID, if set, stops the answer only if it is still the
	// chat's active one: the id of the answer's message (the "start"
	// chunk's messageId). A stop that arrives after a newer answer started
	// then stops nothing.
	ActiveStreamID string `json:"activeStreamId,omitempty"`
	// AssistantMessage, the client's copy of the partial answer, is
	// accepted and ignored: Herald keeps the partial answer itself.
	AssistantMessage json.RawMessage `json:"assistantMessage,omitempty"`
}

// StopResult is the answer to POST /ai/chat/{id}/stop.
type StopResult struct {
	// Stopped reports whether an answer was running and was stopped.
	Stopped bool `json:"stopped"`
	// ActiveStreamID is the stopped answer's message id.
	ActiveStreamID string `json:"activeStreamId,omitempty"`
}

// HandleStop serves POST /ai/chat/{id}/stop: it cancels the chat's active
// answer, whose stream then ends with its partial text and an abort chunk,
// and answers once that end is stored. Stopping a chat with no running
// answer is not an error: it answers {"stopped": false}.
func (h *Handler) HandleStop(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r, false)
	if !ok {
		return
	}
	var sr StopRequest
	if len(bytes.TrimSpace(body)) > 0 {
		if err := httpjson.DecodeStrict(body, &sr); err != nil {
			access.Write(w, r, access.BadRequest("%v (the body is optional: {\"activeStreamId\": \"...\"})", err))
			return
		}
	}
	chatID := r.PathValue("id")
	a, ok := h.active.get(chatID)
	if _, err := h.chat.Allow(r, access.Cancel, a.id); err != nil {
		h.chat.WriteError(w, r, err)
		return
	}
	if !ok || (sr.ActiveStreamID != "" && sr.ActiveStreamID != a.id) {
		httpjson.Write(w, http.StatusOK, StopResult{})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	switch err := h.chat.Stop(ctx, a.id); {
	case errors.Is(err, chat.ErrFinished), errors.Is(err, chat.ErrNotFound):
		httpjson.Write(w, http.StatusOK, StopResult{})
		return
	case err != nil:
		h.chat.WriteError(w, r, err)
		return
	}
	h.active.clear(chatID, a.id)
	httpjson.Write(w, http.StatusOK, StopResult{Stopped: true, ActiveStreamID: a.id})
}

// stop stops a chat's previous answer, which a new one replaces.
func (h *Handler) stop(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := h.chat.Stop(ctx, id); err != nil && !errors.Is(err, chat.ErrFinished) && !errors.Is(err, chat.ErrNotFound) {
		h.log.Warn("aisdk: cannot stop the answer a new one replaces", "id", id, "err", err)
	}
}

// readBody reads a request body of at most the chat service's limit. A JSON
// Content-Type is required when the body is (or, with required, may be)
// not empty.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, required bool) ([]byte, bool) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	jsonType := err == nil && mt == "application/json"
	if required && !jsonType {
		access.Write(w, r, access.Errorf(http.StatusUnsupportedMediaType, "", "unsupported Content-Type %q: send application/json", ct))
		return nil, false
	}
	body, err := access.ReadBody(w, r, h.chat.BodyLimit())
	if err != nil {
		access.Write(w, r, err)
		return nil, false
	}
	if !jsonType && len(bytes.TrimSpace(body)) > 0 {
		access.Write(w, r, access.Errorf(http.StatusUnsupportedMediaType, "", "unsupported Content-Type %q for a body: send application/json", ct))
		return nil, false
	}
	return body, true
}

// serve writes the answer id's subscription as a UI message stream,
// starting with the events popped from it already (popped). A stream that
// ends before the answer's end (the subscription was cut off) is aborted,
// so that the client sees a broken connection and can resume, instead of a
// clean end that would make a partial answer look whole.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, sub *hub.Subscription, id string, popped []*hub.Event) {
	w.Header().Set(StreamHeader, StreamVersion)
	enc := &encoder{}
	pre := opening(id)
	for _, ev := range popped {
		pre = append(pre, enc.encode(ev)...)
	}
	h.stream.Serve(w, r, sub, sse.Stream{
		Preamble: pre,
		Encode:   enc.encode,
		NoRetry:  true,
		Finish: func(err error) bool {
			if !enc.ended {
				h.log.Info("aisdk: stream cut off before the end of the answer", "id", id, "cause", fmt.Sprint(err))
			}
			return enc.ended
		},
	})
}
