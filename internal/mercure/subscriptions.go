package mercure

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/outage"
	"github.com/heraldpush/herald/internal/topicmatch"
	"github.com/heraldpush/herald/pubsub"
)

// JSONLDContext is the @context of the subscription documents.
const JSONLDContext = "https://mercure.rocks/"

// Subscription is the JSON-LD document that describes one subscription (a
// subscriber's topic selector), in subscription events and the
// subscriptions API. A subscription made with a 0.x "topic" parameter has
// Topic; one made with a current-protocol "match" parameter has MatchType
// and Match. LastEventID is given under both protocols' names.
type Subscription struct {
	Context          string          `json:"@context,omitempty"`
	ID               string          `json:"id"`
	Type             string          `json:"type"`
	Subscriber       string          `json:"subscriber"`
	Topic            string          `json:"topic,omitempty"`
	MatchType        string          `json:"match_type,omitempty"`
	Match            string          `json:"match,omitempty"`
	Active           bool            `json:"active"`
	LastEventID      string          `json:"lastEventID,omitempty"`
	LastEventIDSnake string          `json:"last_event_id,omitempty"`
	Payload          json.RawMessage `json:"payload,omitempty"`
}

// Subscriptions is the JSON-LD document of a collection of subscriptions.
type Subscriptions struct {
	Context          string         `json:"@context"`
	ID               string         `json:"id"`
	Type             string         `json:"type"`
	LastEventID      string         `json:"lastEventID"`
	LastEventIDSnake string         `json:"last_event_id"`
	Subscriptions    []Subscription `json:"subscriptions"`
}

// SubscriptionID returns the IRI of a subscription made with a 0.x "topic"
// parameter, which is also the topic of its subscription events:
// /.well-known/mercure/subscriptions/{topic}/{subscriber}, each variable
// query-escaped once.
func SubscriptionID(topic, subscriber string) string {
	return SubscriptionsPath + "/" + url.QueryEscape(topic) + "/" + url.QueryEscape(subscriber)
}

// MatchSubscriptionID returns the IRI of a subscription made with a
// current-protocol "match" parameter:
// /.well-known/mercure/subscriptions/{match_type}/{match}/{subscriber},
// each variable percent-encoded once as an RFC 6570 simple expansion does
// (everything but unreserved characters).
func MatchSubscriptionID(matchType, match, subscriber string) string {
	return SubscriptionsPath + "/" + escapeVar(matchType) + "/" + escapeVar(match) + "/" + escapeVar(subscriber)
}

// escapeVar percent-encodes s as an RFC 6570 simple string expansion:
// every byte but ALPHA, DIGIT, "-", ".", "_" and "~".
func escapeVar(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// subscriber is one open Mercure stream, as the subscriptions API lists it.
type subscriber struct {
	id        string // urn:uuid:...
	seq       uint64
	selectors []subscribed
}

// subscribed is one of a subscriber's selectors and its payload.
type subscribed struct {
	typ     string // "" for a 0.x topic selector, else the matcher type
	raw     string
	payload json.RawMessage
}

func (s *subscriber) docs(active bool, context string) []Subscription {
	out := make([]Subscription, 0, len(s.selectors))
	for _, x := range s.selectors {
		d := Subscription{Context: context, Type: "Subscription", Subscriber: s.id, Active: active, Payload: x.payload}
		if x.typ == "" {
			d.ID, d.Topic = SubscriptionID(x.raw, s.id), x.raw
		} else {
			d.ID, d.MatchType, d.Match = MatchSubscriptionID(x.typ, x.raw, s.id), x.typ, x.raw
		}
		out = append(out, d)
	}
	return out
}

// registry holds this node's open Mercure streams.
type registry struct {
	mu  sync.Mutex
	seq uint64
	m   map[string]*subscriber
}

func newRegistry() *registry { return &registry{m: make(map[string]*subscriber)} }

// add registers a subscriber for s. Each selector's payload is the token's
// for it (payloadFor, when the token has authorization details), else
// payload.
func (r *registry) add(s *subscription, payload json.RawMessage, payloadFor func(string) json.RawMessage) *subscriber {
	sel := make([]subscribed, len(s.selectors))
	for i, x := range s.selectors {
		sel[i] = subscribed{typ: string(x.typ), raw: x.String(), payload: payload}
		if payloadFor != nil {
			sel[i].payload = payloadFor(x.String())
		}
	}
	me := &subscriber{selectors: sel}
	// A random version 4 UUID, in the form Mercure hubs use.
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	me.id = fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
	r.mu.Lock()
	r.seq++
	me.seq = r.seq
	r.m[me.id] = me
	r.mu.Unlock()
	return me
}

func (r *registry) remove(s *subscriber) {
	r.mu.Lock()
	delete(r.m, s.id)
	r.mu.Unlock()
}

// list returns the subscribers, oldest first.
func (r *registry) list() []*subscriber {
	r.mu.Lock()
	out := make([]*subscriber, 0, len(r.m))
	for _, s := range r.m {
		out = append(out, s)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// announce publishes a subscription event for each of me's selectors: a
// private update on the subscription's IRI (and SubscriptionsTopic) whose data is its
// JSON-LD document. A selector too long for its IRI to be a Herald topic
// gets no event.
func (h *Handler) announce(ctx context.Context, me *subscriber, active bool) {
	for _, doc := range me.docs(active, JSONLDContext) {
		if err := hub.ValidateTopic(doc.ID); err != nil {
			h.log.Debug("mercure: no subscription event: its topic is not a valid Herald topic", "topic", doc.ID, "err", err)
			continue
		}
		data, _ := json.Marshal(doc)
		m := &pubsub.Message{Topics: []string{doc.ID, SubscriptionsTopic}, Data: string(data), Private: true}
		if _, err := h.o.Hub.Publish(ctx, m); err != nil {
			h.o.Metrics.Failed(outage.Publish, fmt.Errorf("mercure subscription event for %s: %w", doc.ID, err))
		}
	}
}

// lastEventID returns the id a client resumes from to get every event
// published after now: the log's head, or "earliest" when it is empty.
func (h *Handler) lastEventID(ctx context.Context) (string, error) {
	snap, err := h.o.Hub.Broker().Read(ctx, pubsub.Query{Topics: []string{HubTopic}})
	if err != nil {
		return "", err
	}
	if snap.Head.Offset == 0 {
		return EarliestID, nil
	}
	return snap.Head.String(), nil
}

// subscriptionsAPI serves GET /.well-known/mercure/subscriptions,
// .../subscriptions/{topic} and .../subscriptions/{topic}/{subscriber}.
func (h *Handler) subscriptionsAPI(w http.ResponseWriter, r *http.Request) {
	if !h.o.Subscriptions {
		access.Write(w, r, access.Errorf(http.StatusNotFound, "", "the subscriptions API is off: start Herald with --mercure-subscriptions"))
		return
	}
	if r.Method != http.MethodGet {
		access.WriteMethodNotAllowed(w, r, "GET")
		return
	}
	path := r.URL.EscapedPath()
	q, err := parseSubscriptionsPath(path)
	if err != nil {
		access.Write(w, r, err)
		return
	}

	// Mercure: the request needs a subscriber token whose mercure.subscribe
	// claim selects the requested URL (its path); without a subscriber
	// key, the policy lets loopback clients only in.
	if _, err := h.ask(r, access.ReadMetadata, []string{path}); err != nil {
		refuse(w, r, err)
		return
	}

	last, err := h.lastEventID(r.Context())
	if err != nil {
		access.Write(w, r, &access.Error{Status: http.StatusServiceUnavailable, Msg: "history unavailable: " + err.Error(), RetryAfter: 1})
		return
	}
	etag := `"` + last + `"`
	hdr := w.Header()
	hdr.Set("ETag", etag)
	hdr.Set("Cache-Control", "no-cache")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}

	var body any
	if q.single {
		var found *Subscription
		for _, sub := range h.subs.list() {
			if sub.id != q.subscriber {
				continue
			}
			for _, d := range sub.docs(true, JSONLDContext) {
				if q.selects(d) {
					found = &d
					break
				}
			}
		}
		if found == nil {
			access.Write(w, r, access.Errorf(http.StatusNotFound, "", "no active subscription of %q to %q", clip(q.subscriber), clip(q.match)))
			return
		}
		found.LastEventID, found.LastEventIDSnake = last, last
		body = found
	} else {
		c := Subscriptions{Context: JSONLDContext, ID: path, Type: "Subscriptions", LastEventID: last, LastEventIDSnake: last, Subscriptions: []Subscription{}}
		for _, sub := range h.subs.list() {
			for _, d := range sub.docs(true, "") {
				if q.selects(d) {
					c.Subscriptions = append(c.Subscriptions, d)
				}
			}
		}
		body = c
	}
	b, err := json.Marshal(body)
	if err != nil {
		access.Write(w, r, access.Errorf(http.StatusInternalServerError, "", "cannot encode the answer"))
		return
	}
	hdr.Set("Content-Type", "application/ld+json")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write(append(b, '\n'))
}

// subscriptionsQuery is what a subscriptions API path asks for.
type subscriptionsQuery struct {
	all        bool   // the whole collection
	typ        string // "" for a 0.x topic, else a matcher type
	match      string // the topic or matcher
	subscriber string
	single     bool
}

// selects reports whether d is in the answer (its subscriber aside).
func (q subscriptionsQuery) selects(d Subscription) bool {
	switch {
	case q.all:
		return true
	case q.typ == "":
		return d.MatchType == "" && d.Topic == q.match
	}
	return d.MatchType == q.typ && d.Match == q.match
}

// parseSubscriptionsPath reads a subscriptions API path: the collection
// (/subscriptions), 0.x's /subscriptions/{topic}[/{subscriber}] (each
// query-escaped) and the current protocol's
// /subscriptions/{match_type}/{match}[/{subscriber}] (percent-encoded).
// Two segments whose first is a matcher type name ("exact", "urlpattern")
// are read the current protocol's way.
func parseSubscriptionsPath(path string) (subscriptionsQuery, error) {
	rest := strings.TrimPrefix(strings.TrimPrefix(path, SubscriptionsPath), "/")
	if rest == "" {
		return subscriptionsQuery{all: true}, nil
	}
	segs := strings.Split(rest, "/")
	_, typed := topicmatch.ParseType(segs[0])
	unescape := url.QueryUnescape
	if typed && len(segs) > 1 {
		unescape = url.PathUnescape
	}
	for i, v := range segs {
		u, err := unescape(v)
		if err != nil || u == "" {
			return subscriptionsQuery{}, badRequest(fmt.Sprintf("malformed path segment %q", clip(v)))
		}
		segs[i] = u
	}
	switch {
	case len(segs) == 1:
		return subscriptionsQuery{match: segs[0]}, nil
	case len(segs) == 2 && !typed:
		return subscriptionsQuery{match: segs[0], subscriber: segs[1], single: true}, nil
	case len(segs) == 2:
		return subscriptionsQuery{typ: segs[0], match: segs[1]}, nil
	case len(segs) == 3 && typed:
		return subscriptionsQuery{typ: segs[0], match: segs[1], subscriber: segs[2], single: true}, nil
	}
	return subscriptionsQuery{}, access.Errorf(http.StatusNotFound, "", "no such endpoint: %s", clip(path))
}
