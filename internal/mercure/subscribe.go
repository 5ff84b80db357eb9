package mercure

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/eventstream"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/sse"
)

// subscription is what a subscribe request asks for.
type subscription struct {
	selectors []*Selector
	// topics are the Herald topics the hub subscription follows: the exact
	// selectors, and HubTopic (and SubscriptionsTopic) when a selector is
	// a template or "*".
	topics []string
}

// parseSelectors reads the "topic" query parameters of a subscribe request.
func (h *Handler) parseSelectors(q map[string][]string) (*subscription, error) {
	wideTopics := []string{HubTopic}
	if h.o.Subscriptions {
		wideTopics = append(wideTopics, SubscriptionsTopic)
	}
	raw := q["topic"]
	switch {
	case len(raw) == 0:
		return nil, badRequest(`missing "topic" query parameter: give one per topic selector (an IRI, a URI template, or *)`)
	case len(raw) > h.o.MaxTopics:
		return nil, &access.Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("too many topic selectors: %d (limit %d)", len(raw), h.o.MaxTopics), Reason: "max_topics"}
	}
	s := &subscription{}
	wide := false
	for _, t := range raw {
		if slices.ContainsFunc(s.selectors, func(x *Selector) bool { return x.String() == t }) {
			continue
		}
		sel, err := compileCached(t)
		if err != nil {
			return nil, badRequest(fmt.Sprintf("topic selector %q: %v", t, err))
		}
		s.selectors = append(s.selectors, sel)
		if !sel.Exact() {
			wide = true
			continue
		}
		if err := hub.ValidateTopic(t); err != nil {
			return nil, badRequest(fmt.Sprintf("topic %q: %v", t, err))
		}
		s.topics = append(s.topics, t)
	}
	if wide {
		for _, t := range wideTopics {
			if !slices.Contains(s.topics, t) {
				s.topics = append(s.topics, t)
			}
		}
	}
	return s, nil
}

// exact returns the subscription's exact selectors: Herald topics.
func (s *subscription) exact() []string {
	var out []string
	for _, sel := range s.selectors {
		if sel.Exact() {
			out = append(out, sel.String())
		}
	}
	return out
}

// match returns the hub's Match rule for a subscriber: an update is
// delivered when one of its topics (canonical or alternate) is selected by
// one of the subscriber's selectors and, for a private update, when the
// policy lets the subscriber see one of its topics' private updates
// (canSee: the token's mercure.subscribe claim selects it; nil: none).
// The endpoint's own topics are never matched against.
func (s *subscription) match(canSee func(topic string) bool) func(*pubsub.Message) bool {
	return func(m *pubsub.Message) bool {
		subscribed := false
		for _, t := range m.Topics {
			if hubTopic(t) {
				continue
			}
			for _, sel := range s.selectors {
				if sel.Match(t) {
					subscribed = true
					break
				}
			}
			if subscribed {
				break
			}
		}
		if !subscribed {
			return false
		}
		if !m.Private {
			return true
		}
		if canSee == nil {
			return false
		}
		for _, t := range m.Topics {
			if !hubTopic(t) && canSee(t) {
				return true
			}
		}
		return false
	}
}

// encKey keys the Mercure wire form of events in hub.Event.Memo.
type encKey struct{}

// encode returns an event's wire form for Mercure subscribers: a message
// carries its publisher's id (or Herald's position) and retry field.
func encode(ev *hub.Event) []byte {
	if ev.Kind != hub.KindMessage {
		return ev.SSE()
	}
	return ev.Memo(encKey{}, func() []byte {
		m := ev.Msg
		mt, data := unwrap(m), m.Data
		id := mt.ID
		if id == "" {
			id = ev.ID() // Herald's: a vector for a subscription on several shards
		}
		e := sse.Event{ID: id, Type: m.Type, Data: data, Retry: mt.Retry}
		b, err := e.AppendTo(nil)
		if err != nil {
			// Publishers' ids and types are checked; this is a message
			// stored by something else: send it with Herald's id.
			e.ID = ev.ID()
			e.Type = ""
			b, _ = e.AppendTo(nil)
		}
		return b
	})
}

// subscribe serves GET /.well-known/mercure.
func (h *Handler) subscribe(w http.ResponseWriter, r *http.Request) {
	q, err := queryValues(r)
	if err != nil {
		access.Write(w, r, err)
		return
	}
	s, err := h.parseSelectors(q)
	if err != nil {
		access.Write(w, r, err)
		return
	}
	// The policy sees the exact selectors: they are Herald topics, and one
	// may belong to another face (a chat answer), which Mercure's rules do
	// not open. Templates and "*" follow HubTopic, which carries Mercure's
	// own updates only.
	d, err := h.ask(r, access.Subscribe, s.exact())
	if err != nil {
		access.Write(w, r, err)
		return
	}

	// Resume position: the Last-Event-ID header wins over the lastEventID
	// query parameter.
	requested := r.Header.Get("Last-Event-ID")
	if requested == "" {
		requested = q.Get("lastEventID")
	}
	lastID := requested
	switch {
	case requested == EarliestID:
		lastID = h.o.Hub.Earliest(s.topics)
	case requested != "":
		// Herald's own ids of the current epochs are positions already
		// (publishers cannot choose ids of that form); others may be
		// publishers' ids.
		if h.o.Hub.KnownID(requested) {
			break
		}
		if pos, ok := h.index.lookup(r.Context(), h.o.Hub.Broker(), requested); ok {
			lastID = pos.String()
		}
	}

	if h.o.Subscriptions {
		me := h.subs.add(s, d.Payload)
		h.announce(r.Context(), me, true)
		defer func() {
			h.subs.remove(me)
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
			defer cancel()
			h.announce(ctx, me, false)
		}()
	}

	sub, err := h.o.Hub.Subscribe(r.Context(), hub.Request{Topics: s.topics, LastEventID: lastID, Match: s.match(d.CanSeePrivate)})
	if err != nil {
		if err := eventstream.SubscribeError(w, err, h.o.Metrics); err != nil {
			access.Write(w, r, err)
		}
		return
	}
	defer sub.Close()

	// The prelude is queued: it tells whether the resume is exact, which
	// the Last-Event-ID response header must say before the body starts.
	prelude, _ := sub.Pop(nil)
	if requested != "" {
		got := requested
		if requested == EarliestID || len(prelude) > 0 && prelude[0].Kind == hub.KindReset {
			got = EarliestID
		}
		w.Header().Set("Last-Event-ID", got)
	}
	var pre []byte
	for _, ev := range prelude {
		if ev.Kind == hub.KindReset && requested == EarliestID {
			continue // "all you have" was asked for: not a loss
		}
		pre = append(pre, encode(ev)...)
	}
	eventstream.Stream(r.Context(), w, sub, eventstream.StreamOptions{
		Retry:        h.o.Retry,
		KeepAlive:    h.o.KeepAlive,
		WriteTimeout: h.o.WriteTimeout,
		Expires:      d.Expires,
		Metrics:      h.o.Metrics,
		Logger:       h.log,
		Preamble:     pre,
		Encode:       encode,
	})
}
