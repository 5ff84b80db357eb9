package mercure

import (
	"context"
	"net/http"
	"time"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/transport/sse"
	"github.com/heraldpush/herald/pubsub"
	ssewire "github.com/heraldpush/herald/sse"
)

// subscription is what a subscribe request asks for.
type subscription struct {
	selectors []selector
	// topics are the Herald topics the hub subscription follows: the exact
	// selectors, and HubTopic (and SubscriptionsTopic) when a selector is
	// a template, a URL pattern or "*" (wide).
	topics []string
	wide   bool
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
		return sse.Encode(ev)
	}
	return ev.Memo(encKey{}, func() []byte {
		m := ev.Msg
		mt, data := unwrap(m), m.Data
		id := mt.ID
		if id == "" {
			id = ev.ID() // Herald's: a vector for a subscription on several shards
		}
		e := ssewire.Event{ID: id, Type: m.Type, Data: data, Retry: mt.Retry}
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
		refuse(w, r, err)
		return
	}

	// Resume position: the Last-Event-ID header wins over the query
	// parameters, last_event_id (the current protocol's) then lastEventID
	// (0.x's).
	requested := r.Header.Get("Last-Event-ID")
	for _, p := range []string{"last_event_id", "lastEventID"} {
		if requested == "" {
			requested = q.Get(p)
		}
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

	// The subscription is announced while it lasts: until the stream
	// ends, which on the lean path is after this handler returns.
	var done func()
	if h.o.Subscriptions {
		me := h.subs.add(s, d.Payload, d.PayloadFor)
		h.announce(r.Context(), me, true)
		ctx := context.WithoutCancel(r.Context())
		done = func() {
			h.subs.remove(me)
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			h.announce(ctx, me, false)
		}
	}

	sub, err := h.o.Hub.Subscribe(r.Context(), hub.Request{Topics: s.topics, LastEventID: lastID, Match: s.match(d.CanSeePrivate)})
	if err != nil {
		if done != nil {
			done()
		}
		h.o.Stream.Refuse(w, r, err)
		return
	}

	// The prelude is queued: it tells whether the resume is exact, which
	// the Last-Event-ID response header must say before the body starts.
	prelude, _ := sub.Pop(nil)
	if requested != "" {
		got := requested
		if requested == EarliestID || len(prelude) > 0 && prelude[0].Kind == hub.KindReset {
			got = EarliestID
		}
		// Both protocols' names: 0.x's Last-Event-ID, the current
		// protocol's Mercure-Last-Event-ID.
		w.Header().Set("Last-Event-ID", got)
		w.Header().Set("Mercure-Last-Event-ID", got)
	}
	var pre []byte
	for _, ev := range prelude {
		if ev.Kind == hub.KindReset && requested == EarliestID {
			continue // "all you have" was asked for: not a loss
		}
		pre = append(pre, encode(ev)...)
	}
	h.o.Stream.Serve(w, r, sub, sse.Stream{Preamble: pre, Encode: encode, Expires: d.Expires, Done: done})
}
