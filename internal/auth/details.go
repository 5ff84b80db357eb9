package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/heraldpush/herald/internal/topicmatch"
)

// The authorization detail types (RFC 9396) that carry Mercure grants:
// "mercure", as the current protocol draft names it, and the URL the
// reference hub's documentation gives. Entries of other types are ignored.
const (
	DetailTypeMercure    = "mercure"
	DetailTypeMercureURL = "https://mercure.rocks/authorization-detail"
)

// Actions of a Mercure authorization detail. Others are ignored, as the
// protocol asks (they grant nothing).
const (
	ActionPublish   = "publish"
	ActionSubscribe = "subscribe"
)

// MaxDetails bounds the Mercure authorization details of a token; their
// topics together are bounded by MaxSelectors.
const MaxDetails = 100

// Detail is a validated Mercure authorization detail: the actions it
// grants on the topics its matchers select, and the payload attached to
// the subscriptions it covers.
type Detail struct {
	Publish, Subscribe bool
	Topics             []*topicmatch.Matcher
	Payload            json.RawMessage
}

// ParseAuthorizationDetails reads the authorization_details claim (a JSON
// array) and returns its Mercure entries, compiled. Entries of other types
// are skipped unread, whatever their shape. A Mercure entry must have a
// non-empty "actions" array of strings and a non-empty "topics" array of
// topic matcher objects, {"match": M} with an optional "match_type" of
// "exact" (the default) or "urlpattern". Herald also reads the spellings
// of earlier drafts and of the query parameters: "matchType" ("Exact",
// "URLPattern", any case) and {"match_urlpattern": M}. One malformed
// Mercure entry fails the whole claim, as the protocol requires: acting on
// the others would silently change what the token grants.
func ParseAuthorizationDetails(raw json.RawMessage) ([]Detail, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, errors.New("not a JSON array")
	}
	var out []Detail
	topics := 0
	for i, e := range entries {
		var head struct {
			Type json.RawMessage `json:"type"`
		}
		if err := json.Unmarshal(e, &head); err != nil {
			// Not an object: not a Mercure entry either, but RFC 9396
			// entries are objects; refuse rather than guess.
			return nil, fmt.Errorf("[%d]: not a JSON object", i)
		}
		var typ string
		if json.Unmarshal(head.Type, &typ) != nil || typ != DetailTypeMercure && typ != DetailTypeMercureURL {
			continue
		}
		if len(out) == MaxDetails {
			return nil, fmt.Errorf("more than %d Mercure authorization details", MaxDetails)
		}
		d, n, err := parseDetail(e, MaxSelectors-topics)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %w", i, err)
		}
		topics += n
		out = append(out, d)
	}
	return out, nil
}

func parseDetail(raw json.RawMessage, room int) (Detail, int, error) {
	var body struct {
		Actions []string          `json:"actions"`
		Topics  []json.RawMessage `json:"topics"`
		Payload json.RawMessage   `json:"payload"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return Detail{}, 0, errors.New(`"actions" must be an array of strings, "topics" an array of objects`)
	}
	var d Detail
	if len(body.Actions) == 0 {
		return d, 0, errors.New(`"actions" is missing or empty: give "publish", "subscribe" or both`)
	}
	for _, a := range body.Actions {
		switch a {
		case ActionPublish:
			d.Publish = true
		case ActionSubscribe:
			d.Subscribe = true
		}
	}
	switch {
	case len(body.Topics) == 0:
		return d, 0, errors.New(`"topics" is missing or empty: give at least one {"match": ...}`)
	case len(body.Topics) > room:
		return d, 0, fmt.Errorf("more than %d topic matchers in all", MaxSelectors)
	}
	for j, t := range body.Topics {
		m, err := parseTopic(t)
		if err != nil {
			return d, 0, fmt.Errorf("topics[%d]: %w", j, err)
		}
		d.Topics = append(d.Topics, m)
	}
	if p := bytes.TrimSpace(body.Payload); len(p) > 0 && !bytes.Equal(p, []byte("null")) {
		d.Payload = p
	}
	return d, len(d.Topics), nil
}

// parseTopic reads one topic matcher object.
func parseTopic(raw json.RawMessage) (*topicmatch.Matcher, error) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return nil, errors.New(`a topic matcher must be an object such as {"match": "https://example.com/books/1"}`)
	}
	var o struct {
		Match           *string `json:"match"`
		MatchType       *string `json:"match_type"`
		MatchTypeCamel  *string `json:"matchType"`
		MatchURLPattern *string `json:"match_urlpattern"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, errors.New(`"match" and "match_type" must be strings`)
	}
	var pattern string
	typ := topicmatch.Exact
	switch {
	case o.MatchURLPattern != nil && (o.Match != nil || o.MatchType != nil || o.MatchTypeCamel != nil):
		return nil, errors.New(`"match_urlpattern" cannot be combined with "match" or "match_type"`)
	case o.MatchURLPattern != nil:
		pattern, typ = *o.MatchURLPattern, topicmatch.URLPattern
	case o.Match == nil:
		return nil, errors.New(`the "match" property is missing`)
	case o.MatchType != nil && o.MatchTypeCamel != nil:
		return nil, errors.New(`give "match_type" or "matchType", not both`)
	case o.MatchType != nil:
		t, ok := topicmatch.ParseType(*o.MatchType)
		if !ok {
			return nil, fmt.Errorf(`unsupported "match_type" %q (use %q or %q)`, clip(*o.MatchType), topicmatch.Exact, topicmatch.URLPattern)
		}
		pattern, typ = *o.Match, t
	case o.MatchTypeCamel != nil:
		t, ok := topicmatch.ParseType(strings.ToLower(*o.MatchTypeCamel))
		if !ok {
			return nil, fmt.Errorf(`unsupported "matchType" %q (use %q or %q)`, clip(*o.MatchTypeCamel), "Exact", "URLPattern")
		}
		pattern, typ = *o.Match, t
	default:
		pattern = *o.Match
	}
	m, err := topicmatch.Shared.Compile(typ, pattern)
	if err != nil {
		return nil, fmt.Errorf("%s matcher: %w", typ, err)
	}
	return m, nil
}

// DetailSelectors returns the matchers of the grant's Mercure
// authorization details that carry role's action.
func (g *Grant) DetailSelectors(role Role) Selectors {
	if g == nil {
		return nil
	}
	var out Selectors
	for _, d := range g.Details {
		if role == RolePublisher && d.Publish || role == RoleSubscriber && d.Subscribe {
			for _, m := range d.Topics {
				out = append(out, m)
			}
		}
	}
	return out
}

// SubscriptionPayload returns the payload to attach to a subscription
// whose matcher is match: the payload of the first subscribe detail one of
// whose matchers selects match (read as a topic), as the protocol has it;
// otherwise the mercure claim's payload. Nil when there is none.
func (g *Grant) SubscriptionPayload(match string) json.RawMessage {
	if g == nil {
		return nil
	}
	for _, d := range g.Details {
		if !d.Subscribe {
			continue
		}
		for _, m := range d.Topics {
			if m.Match(match) {
				return d.Payload
			}
		}
	}
	if g.Claims != nil && g.Claims.Mercure != nil {
		return g.Claims.Mercure.Payload
	}
	return nil
}

// accessTokenType reports whether a JWT header's typ names a JWT access
// token (RFC 9068): "at+jwt", or "application/at+jwt", in any case.
func accessTokenType(typ any) bool {
	s, ok := typ.(string)
	if !ok {
		return false
	}
	s = strings.ToLower(s)
	return strings.TrimPrefix(s, "application/") == "at+jwt"
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
