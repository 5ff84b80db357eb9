package mercure

import (
	"strconv"
	"time"

	"github.com/heraldpush/herald/pubsub"
)

// HubTopic is the Herald topic every update published through the Mercure
// endpoint carries beside its own topics (and every subscription event).
// It gives URI-template and "*" subscriptions one ordered history to read
// and resume from: they follow HubTopic and keep what their selectors
// select. Mercure publishers cannot publish to it: it lies in the reserved
// /.well-known/mercure namespace. Selectors are matched against an
// update's other topics, never against HubTopic.
const HubTopic = "/.well-known/mercure"

// SubscriptionsTopic is the Herald topic every subscription event carries
// beside its own, for the same purpose as HubTopic: template and "*"
// subscriptions follow it too when subscriptions are on. Keeping them
// apart leaves HubTopic's history (bounded per topic) to updates.
const SubscriptionsTopic = "/.well-known/mercure/subscriptions"

// hubTopic reports whether t is one of the endpoint's own topics, which
// selectors are never matched against.
func hubTopic(t string) bool { return t == HubTopic || t == SubscriptionsTopic }

// Meta keys of a stored update (pubsub.Message.Meta).
const (
	metaID    = "mercure.id"    // the publisher's event id
	metaRetry = "mercure.retry" // the retry delay, in milliseconds
)

// meta is what a Mercure update carries that a Herald message has no field
// for: the publisher's event id and the retry delay.
type meta struct {
	ID    string
	Retry time.Duration
}

// wrap returns the message metadata that stores m: nil when m is empty.
// Every broker stores Message.Meta, so it travels through all of them.
func wrap(m meta) map[string]string {
	if m == (meta{}) {
		return nil
	}
	out := make(map[string]string, 2)
	if m.ID != "" {
		out[metaID] = m.ID
	}
	if m.Retry > 0 {
		out[metaRetry] = strconv.FormatInt(m.Retry.Milliseconds(), 10)
	}
	return out
}

// unwrap returns the Mercure metadata of a stored message. Metadata it
// does not understand (a malformed retry) is left out. (Releases before
// Meta kept it in a "\xffmercure:" line ahead of the data: the brokers
// move that line to Meta when they read such a message.)
func unwrap(msg *pubsub.Message) meta {
	if len(msg.Meta) == 0 {
		return meta{}
	}
	m := meta{ID: msg.Meta[metaID]}
	if r := msg.Meta[metaRetry]; r != "" {
		if ms, err := strconv.ParseInt(r, 10, 64); err == nil && ms > 0 {
			m.Retry = time.Duration(ms) * time.Millisecond
		}
	}
	return m
}

// publisherID returns the id the publisher gave m, or "".
func publisherID(m *pubsub.Message) string {
	return m.Meta[metaID]
}

// eventID returns the id a Mercure subscriber sees for m: the publisher's
// id, or Herald's position.
func eventID(m *pubsub.Message) string {
	if id := publisherID(m); id != "" {
		return id
	}
	return m.Pos.String()
}
