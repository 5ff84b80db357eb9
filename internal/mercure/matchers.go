package mercure

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/topicmatch"
)

// The subscribe query parameters that name topic selectors. The 0.x
// protocol's "topic" takes exact topics, "*" and URI templates; the current
// protocol's "match" (or "match_exact") takes exact topics and "*",
// "match_urlpattern" URL patterns. "matchExact" and "matchURLPattern" are
// the spellings of a draft in between, read as well. A request may mix
// them all; any other parameter in the reserved "match" namespace (a name
// starting with "match" in any case) is refused, as the protocol requires.
const (
	paramTopic = "topic"
	paramMatch = "match"
)

// matchParams maps the accepted "match" parameters to their matcher types,
// in the order a request's parameters are read.
var matchParams = []struct {
	name string
	typ  topicmatch.Type
}{
	{"match", topicmatch.Exact},
	{"match_exact", topicmatch.Exact},
	{"matchExact", topicmatch.Exact},
	{"match_urlpattern", topicmatch.URLPattern},
	{"matchURLPattern", topicmatch.URLPattern},
}

// selector is one of a subscription's topic selectors: a 0.x topic
// selector (typ "") or a current-protocol topic matcher.
type selector struct {
	m interface {
		Match(topic string) bool
		String() string
		Exact() bool
	}
	typ topicmatch.Type // "" for a 0.x "topic" selector
}

// String returns the selector as the subscriber wrote it.
func (s selector) String() string { return s.m.String() }

// Exact reports whether the selector selects only the topic equal to it.
func (s selector) Exact() bool { return s.m.Exact() }

// Match reports whether the selector selects topic.
func (s selector) Match(topic string) bool { return s.m.Match(topic) }

// parseSelectors reads the topic selectors of a subscribe request: the
// "topic" parameters and the "match" family.
func (h *Handler) parseSelectors(q map[string][]string) (*subscription, error) {
	for name := range q {
		if len(name) >= len(paramMatch) && strings.EqualFold(name[:len(paramMatch)], paramMatch) && !knownMatchParam(name) {
			return nil, badRequest(fmt.Sprintf("unknown topic matcher parameter %q: use match (exact topics, or *), match_urlpattern (URL patterns) or topic (0.x selectors); names are case-sensitive", clip(name)))
		}
	}
	n := len(q[paramTopic])
	for _, p := range matchParams {
		n += len(q[p.name])
	}
	switch {
	case n == 0:
		return nil, badRequest(`missing topic selector: give one or more "match" (an exact topic, or *), "match_urlpattern" (a URL pattern) or "topic" (an IRI, a URI template, or *) query parameters`)
	case n > h.o.MaxTopics:
		return nil, &access.Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("too many topic selectors: %d (limit %d)", n, h.o.MaxTopics), Reason: "max_topics"}
	}
	s := &subscription{}
	add := func(sel selector) error {
		for _, x := range s.selectors {
			if x.typ == sel.typ && x.String() == sel.String() {
				return nil // the same selector twice counts once
			}
		}
		if sel.Exact() {
			if err := hub.ValidateTopic(sel.String()); err != nil {
				return badRequest(fmt.Sprintf("topic %q: %v", clip(sel.String()), err))
			}
			if !slices.Contains(s.topics, sel.String()) {
				s.topics = append(s.topics, sel.String())
			}
		} else {
			s.wide = true
		}
		s.selectors = append(s.selectors, sel)
		return nil
	}
	for _, t := range q[paramTopic] {
		sel, err := compileCached(t)
		if err != nil {
			return nil, badRequest(fmt.Sprintf("topic selector %q: %v", clip(t), err))
		}
		if err := add(selector{m: sel}); err != nil {
			return nil, err
		}
	}
	for _, p := range matchParams {
		for _, v := range q[p.name] {
			m, err := topicmatch.Shared.Compile(p.typ, v)
			if err != nil {
				return nil, badRequest(fmt.Sprintf("%s %q: %v", p.name, clip(v), strings.TrimPrefix(err.Error(), topicmatch.ErrInvalid.Error()+": ")))
			}
			if err := add(selector{m: m, typ: p.typ}); err != nil {
				return nil, err
			}
		}
	}
	if s.wide {
		wideTopics := []string{HubTopic}
		if h.o.Subscriptions {
			wideTopics = append(wideTopics, SubscriptionsTopic)
		}
		for _, t := range wideTopics {
			if !slices.Contains(s.topics, t) {
				s.topics = append(s.topics, t)
			}
		}
	}
	return s, nil
}

func knownMatchParam(name string) bool {
	for _, p := range matchParams {
		if p.name == name {
			return true
		}
	}
	return false
}

// clip bounds a client-supplied string quoted in an error message.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
