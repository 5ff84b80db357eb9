package sse

import (
	"net/http"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/transport"
)

// Handler serves GET /events: it turns a request into a hub subscription
// and writes it as a text/event-stream. Its fields must not be changed
// after the first request.
type Handler struct {
	Hub *hub.Hub
	// Server writes the streams. Required.
	Server *Server
	// MaxTopics bounds the topics of one subscription.
	MaxTopics int
	// Access decides whether the request may subscribe to its topics
	// (face access.FaceEvents): it grants the private-event filter and the
	// credentials' expiry, or refuses with an *access.Error. Nil lets
	// every request in without private events (unit tests).
	Access access.Decider
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		access.WriteMethodNotAllowed(w, r, "GET")
		return
	}
	req, err := transport.ParseRequest(r, h.MaxTopics)
	if err != nil {
		access.Write(w, r, err)
		return
	}
	sub, d, err := transport.Subscribe(h.Hub, h.Access, r, access.FaceEvents, req)
	if err != nil {
		h.Server.Refuse(w, r, err)
		return
	}
	h.Server.Serve(w, r, sub, Stream{Expires: d.Expires})
}
