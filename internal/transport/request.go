package transport

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/outage"
)

// Request holds what a subscription request asks for.
type Request struct {
	Topics      []string
	LastEventID string
}

// ParseRequest reads the topics and the resume position of r, for /events
// and /ws alike: topics from repeated "topic" query parameters, the
// position from LastEventID. Errors are *access.Error values (400).
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
	return Request{Topics: topics, LastEventID: LastEventID(r)}, nil
}

// LastEventID returns the resume position a request names: the
// Last-Event-ID header (an EventSource's reconnection), or else the
// lastEventID query parameter (a first connection that resumes). Every
// face reads it this way.
func LastEventID(r *http.Request) string {
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		return id
	}
	return r.URL.Query().Get("lastEventID")
}

// Subscribe asks the policy whether r may subscribe to req's topics on
// face, then subscribes: the one way every face that follows topics turns
// a request into a hub subscription. match, if set, narrows the
// subscription (see hub.Request.Match; it receives the decision's
// private-event filter). A refusal is an *access.Error; a failed subscribe
// is hub.Subscribe's error (see Refusal).
func Subscribe(h *hub.Hub, d access.Decider, r *http.Request, face access.Face, req Request) (*hub.Subscription, access.Decision, error) {
	dec, err := access.Ask(d, r, access.Query{Action: access.Subscribe, Face: face, Topics: req.Topics})
	if err != nil {
		return nil, dec, err
	}
	sub, err := h.Subscribe(r.Context(), hub.Request{Topics: req.Topics, LastEventID: req.LastEventID, CanSeePrivate: dec.CanSeePrivate})
	return sub, dec, err
}

// Refusal returns the answer to a failed hub.Subscribe, the same on every
// face: 503 while shutting down or when history cannot be read (reported
// through m as an outage.Subscribe failure: counted, and logged once per
// kind and interval), 400 for an invalid topic. hub.ErrFinished is not a
// refusal: each transport says "finished" its own way (SSE: 204 No
// Content; WebSocket: close code 4204), so Refusal is not called with it.
func Refusal(err error, m *metrics.Metrics) *access.Error {
	switch {
	case errors.Is(err, hub.ErrClosed):
		return &access.Error{Status: http.StatusServiceUnavailable, Msg: "server is shutting down", RetryAfter: 1, Err: err}
	case errors.Is(err, hub.ErrInvalidTopic):
		return &access.Error{Status: http.StatusBadRequest, Msg: err.Error(), Err: err}
	}
	m.Failed(outage.Subscribe, err)
	return &access.Error{Status: http.StatusServiceUnavailable, Msg: "history unavailable: " + err.Error(), RetryAfter: 1, Err: err}
}
