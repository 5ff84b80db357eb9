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
	"github.com/heraldpush/herald/pubsub"
)

// JSONLDContext is the @context of the subscription documents.
const JSONLDContext = "https://mercure.rocks/"

// Subscription is the JSON-LD document that describes one subscription (a
// subscriber's topic selector), in subscription events and the
// subscriptions API.
type Subscription struct {
	Context     string          `json:"@context,omitempty"`
	ID          string          `json:"id"`
	Type        string          `json:"type"`
	Subscriber  string          `json:"subscriber"`
	Topic       string          `json:"topic"`
	Active      bool            `json:"active"`
	LastEventID string          `json:"lastEventID,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`
}

// Subscriptions is the JSON-LD document of a collection of subscriptions.
type Subscriptions struct {
	Context       string         `json:"@context"`
	ID            string         `json:"id"`
	Type          string         `json:"type"`
	LastEventID   string         `json:"lastEventID"`
	Subscriptions []Subscription `json:"subscriptions"`
}

// SubscriptionID returns a subscription's IRI, which is also the topic of
// its subscription events: /.well-known/mercure/subscriptions/{topic}/{subscriber},
// each variable query-escaped once.
func SubscriptionID(topic, subscriber string) string {
	return SubscriptionsPath + "/" + url.QueryEscape(topic) + "/" + url.QueryEscape(subscriber)
}

// subscriber is one open Mercure stream, as the subscriptions API lists it.
type subscriber struct {
	id        string // urn:uuid:...
	seq       uint64
	selectors []string
	payload   json.RawMessage
}

func (s *subscriber) docs(active bool, context string) []Subscription {
	out := make([]Subscription, 0, len(s.selectors))
	for _, t := range s.selectors {
		out = append(out, Subscription{Context: context, ID: SubscriptionID(t, s.id), Type: "Subscription",
			Subscriber: s.id, Topic: t, Active: active, Payload: s.payload})
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

func (r *registry) add(s *subscription, payload json.RawMessage) *subscriber {
	sel := make([]string, len(s.selectors))
	for i, x := range s.selectors {
		sel[i] = x.String()
	}
	me := &subscriber{selectors: sel, payload: payload}
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
	rest := strings.TrimPrefix(strings.TrimPrefix(path, SubscriptionsPath), "/")
	var vars []string
	if rest != "" {
		vars = strings.Split(rest, "/")
	}
	if len(vars) > 2 {
		access.Write(w, r, access.Errorf(http.StatusNotFound, "", "no such endpoint: %s", r.URL.Path))
		return
	}
	for i, v := range vars {
		u, err := url.QueryUnescape(v)
		if err != nil || u == "" {
			access.Write(w, r, badRequest(fmt.Sprintf("malformed path segment %q", v)))
			return
		}
		vars[i] = u
	}

	// Mercure: the request needs a subscriber token whose mercure.subscribe
	// claim selects the requested URL (its path); without a subscriber
	// key, the policy lets loopback clients only in.
	if _, err := h.ask(r, access.ReadMetadata, []string{path}); err != nil {
		access.Write(w, r, err)
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
	switch len(vars) {
	case 2:
		var found *Subscription
		for _, s := range h.subs.list() {
			if s.id != vars[1] {
				continue
			}
			for _, d := range s.docs(true, JSONLDContext) {
				if d.Topic == vars[0] {
					found = &d
					break
				}
			}
		}
		if found == nil {
			access.Write(w, r, access.Errorf(http.StatusNotFound, "", "no active subscription of %q to %q", vars[1], vars[0]))
			return
		}
		found.LastEventID = last
		body = found
	default:
		c := Subscriptions{Context: JSONLDContext, ID: path, Type: "Subscriptions", LastEventID: last, Subscriptions: []Subscription{}}
		for _, s := range h.subs.list() {
			for _, d := range s.docs(true, "") {
				if len(vars) == 0 || d.Topic == vars[0] {
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
