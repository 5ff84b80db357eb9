package mercure

import (
	"net/url"
	"strconv"
	"strings"
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

// envelopePrefix starts the data of a stored update that carries a
// publisher's id or retry. 0xFF never occurs in UTF-8 text, and update data
// must be UTF-8, so the prefix cannot be confused with an update's own data.
const envelopePrefix = pubsub.MetaPrefix + "mercure:"

// meta is what a Mercure update carries that a Herald message has no field
// for: the publisher's event id and the retry delay.
type meta struct {
	ID    string
	Retry time.Duration
}

// wrap returns the data to store for an update with meta m: data itself
// when m is empty, else an envelope "\xffmercure:<query>\n<data>" whose
// query holds id and retry (milliseconds). Every broker stores data as
// bytes, so the envelope travels through all of them unchanged.
func wrap(m meta, data string) string {
	if m == (meta{}) {
		return data
	}
	v := url.Values{}
	if m.ID != "" {
		v.Set("id", m.ID)
	}
	if m.Retry > 0 {
		v.Set("retry", strconv.FormatInt(m.Retry.Milliseconds(), 10))
	}
	return envelopePrefix + v.Encode() + "\n" + data
}

// unwrap splits stored data into meta and the update's own data. Data
// without an envelope (or with a malformed one) is returned as it is.
func unwrap(stored string) (meta, string) {
	if !strings.HasPrefix(stored, envelopePrefix) {
		return meta{}, stored
	}
	head, data, ok := strings.Cut(stored[len(envelopePrefix):], "\n")
	if !ok {
		return meta{}, stored
	}
	v, err := url.ParseQuery(head)
	if err != nil {
		return meta{}, stored
	}
	m := meta{ID: v.Get("id")}
	if r := v.Get("retry"); r != "" {
		if ms, err := strconv.ParseInt(r, 10, 64); err == nil && ms > 0 {
			m.Retry = time.Duration(ms) * time.Millisecond
		}
	}
	return m, data
}

// publisherID returns the id the publisher gave m, or "".
func publisherID(m *pubsub.Message) string {
	if !strings.HasPrefix(m.Data, envelopePrefix) {
		return ""
	}
	mt, _ := unwrap(m.Data)
	return mt.ID
}

// eventID returns the id a Mercure subscriber sees for m: the publisher's
// id, or Herald's position.
func eventID(m *pubsub.Message) string {
	if id := publisherID(m); id != "" {
		return id
	}
	return m.Pos.String()
}
