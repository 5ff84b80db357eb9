package chat

import (
	"context"
	"net/http"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/llm"
	"github.com/heraldpush/herald/pubsub"
)

// This file is the service's API for other front ends of the same
// generations (the AI SDK's UI message stream, internal/aisdk): they parse
// their own requests and write their own wire format, and leave limits,
// access, the generation and its history to the service.

// BodyLimit is the largest request body a front end should read for one
// generation: room for --chat-max-prompt-bytes of messages and their JSON.
func (s *Service) BodyLimit() int64 {
	limit := int64(64 << 10)
	if s.limits.MaxPromptBytes > 0 {
		limit += 4 * int64(s.limits.MaxPromptBytes)
	}
	return limit
}

// StartRequest starts a generation for req on behalf of the HTTP request r,
// as POST /chat does: req is checked against the limits, the access policy
// must allow a new stream (access.Create), the generation is owned by r's
// identity, and r's client counts against the per-client limit. Errors are
// for WriteError.
func (s *Service) StartRequest(r *http.Request, req *CreateRequest) (*Started, error) {
	if err := s.validate(req); err != nil {
		return nil, err
	}
	id := newID()
	d, err := s.ask(r, access.Create, id, "")
	if err != nil {
		return nil, err
	}
	return s.start(r.Context(), id, d.Client, d.Owner, req.Conversation, llm.Request{Model: req.Model, Messages: req.Messages, MaxTokens: req.MaxTokens})
}

// Follow subscribes to stream id from its first event: the answer so far,
// then the rest as it comes, up to the final done or error event, after
// which the subscription ends. It returns ErrNotFound for a stream that
// neither this node nor the history knows. The caller must Close the
// subscription.
func (s *Service) Follow(ctx context.Context, id string) (*hub.Subscription, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	start, err := s.streamStart(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.hub.Subscribe(ctx, hub.Request{Topics: []string{TopicPrefix + id}, LastEventID: start.String()})
}

// streamStart returns the position just before the first event of stream
// id, or ErrNotFound.
func (s *Service) streamStart(ctx context.Context, id string) (pubsub.Position, error) {
	if g := s.lookup(id); g != nil {
		return g.start, nil
	}
	// Not started here: another node's, or from before a restart.
	p, known, _, err := s.firstPosition(ctx, id)
	if err != nil {
		return pubsub.Position{}, err
	}
	if !known {
		return pubsub.Position{}, ErrNotFound
	}
	return p, nil
}

// Done returns a channel that is closed once generation id has published
// its final event, or nil when the generation does not run on this node
// (unknown, forgotten, or another node's).
func (s *Service) Done(id string) <-chan struct{} {
	if g := s.lookup(id); g != nil {
		return g.done
	}
	return nil
}

// Allow asks the access policy whether r may do action (access.Subscribe
// to watch, access.Cancel to stop) to stream id, as the service's own
// endpoints do; a cancel is decided with the generation's owner when it
// runs here. An empty id asks about a new stream, so that a front end can
// refuse a request before telling whether a stream exists.
func (s *Service) Allow(r *http.Request, action access.Action, id string) (access.Decision, error) {
	if id == "" {
		id = newID()
	}
	owner := ""
	if action == access.Cancel {
		if g := s.lookup(id); g != nil {
			owner = g.owner
		}
	}
	return s.ask(r, action, id, owner)
}

// WriteError answers err, as returned by the service, with its status and a
// JSON body saying what was wrong.
func (s *Service) WriteError(w http.ResponseWriter, r *http.Request, err error) { s.fail(w, r, err) }
