package mercure

import (
	"errors"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/pubsub"
)

// The topic matching rules of the Mercure protocol: a selector is an exact
// topic, the reserved "*", or an RFC 6570 URI template (a URL is also a
// valid template: it matches itself).
func TestSelectorMatch(t *testing.T) {
	for _, tc := range []struct {
		name, selector string
		exact          bool
		match, miss    []string
	}{
		{"exact IRI", "https://example.com/books/1", true,
			[]string{"https://example.com/books/1"},
			[]string{"https://example.com/books/10", "https://example.com/books/", "https://EXAMPLE.com/books/1", "https://example.com/books/1/"}},
		{"exact string that is not an IRI", "bar", true, []string{"bar"}, []string{"ba", "bar ", "Bar"}},
		{"star selects every topic", "*", false,
			[]string{"https://example.com/anything", "a", "/.well-known/mercure/subscriptions/x/y"}, nil},
		{"star inside a selector is literal", "https://example.com/*", true,
			[]string{"https://example.com/*"}, []string{"https://example.com/books"}},
		{"simple variable: one path segment", "https://example.com/books/{id}", false,
			[]string{"https://example.com/books/1", "https://example.com/books/abc-_.~", "https://example.com/books/caf%C3%A9", "https://example.com/books/{id}"},
			[]string{"https://example.com/books/1/reviews", "https://example.com/books", "https://example.com/movies/1", "x https://example.com/books/1"}},
		{"two variables", "https://example.com/{kind}/{id}", false,
			[]string{"https://example.com/books/1", "https://example.com/movies/2"},
			[]string{"https://example.com/books", "https://example.com/books/1/2"}},
		{"reserved expansion crosses segments", "https://example.com/{+path}", false,
			[]string{"https://example.com/books/1/reviews", "https://example.com/a"},
			[]string{"https://other.com/books"}},
		{"path segment expansion", "/.well-known/mercure/subscriptions{/topic}{/subscriber}", false,
			[]string{"/.well-known/mercure/subscriptions", "/.well-known/mercure/subscriptions/t", "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Fbooks%2F1/urn%3Auuid%3Ax"},
			[]string{"/.well-known/mercure/other"}},
		{"query expansion", "https://example.com/search{?q}", false,
			[]string{"https://example.com/search?q=go", "https://example.com/search"},
			[]string{"https://example.com/searching", "https://example.com/search/x"}},
		{"not a valid template: exact", "https://example.com/{id", true,
			[]string{"https://example.com/{id"}, []string{"https://example.com/1"}},
		{"relative topics", "/books/{id}.jsonld", false,
			[]string{"/books/foo.jsonld"}, []string{"/books/foo.json", "https://example.com/books/foo.jsonld"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Compile(tc.selector)
			if err != nil {
				t.Fatal(err)
			}
			if s.Exact() != tc.exact || s.String() != tc.selector {
				t.Errorf("Exact() = %v, String() = %q", s.Exact(), s.String())
			}
			for _, topic := range tc.match {
				if !s.Match(topic) {
					t.Errorf("%q does not select %q", tc.selector, topic)
				}
			}
			for _, topic := range tc.miss {
				if s.Match(topic) {
					t.Errorf("%q selects %q", tc.selector, topic)
				}
			}
		})
	}
}

func TestSelectorErrors(t *testing.T) {
	for name, sel := range map[string]string{
		"empty":       "",
		"too long":    strings.Repeat("a", auth.MaxSelectorLen+1),
		"invalid utf": "a\xffb",
		"newline":     "a\nb",
		"nul":         "a\x00",
		"c1 control":  "a\u0085b",
	} {
		if _, err := Compile(sel); !errors.Is(err, auth.ErrInvalidSelector) {
			t.Errorf("%s: Compile(%q) = %v, want ErrInvalidSelector", name, sel, err)
		}
	}
}

// A subscription's rule: an update is delivered when one of its topics
// (canonical or alternate) is selected by one of the subscriber's
// selectors; a private one only when one of its topics is selected by the
// token's mercure.subscribe claim (not necessarily the same topic).
// HubTopic never counts.
func TestSubscriptionMatch(t *testing.T) {
	h := &Handler{o: Options{MaxTopics: 10}}
	sub := func(selectors ...string) *subscription {
		s, err := h.parseSelectors(map[string][]string{"topic": selectors})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	claim := func(selectors ...string) auth.Selectors {
		s, err := auth.CompileSelectors(Compiler, selectors)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	msg := func(private bool, topics ...string) *pubsub.Message {
		return &pubsub.Message{Topics: append(topics, HubTopic), Private: private}
	}
	for _, tc := range []struct {
		name  string
		sub   *subscription
		claim auth.Selectors
		msg   *pubsub.Message
		want  bool
	}{
		{"exact, public", sub("https://ex.com/a"), nil, msg(false, "https://ex.com/a"), true},
		{"exact, other topic", sub("https://ex.com/a"), nil, msg(false, "https://ex.com/b"), false},
		{"multiple selectors, second matches", sub("https://ex.com/a", "https://ex.com/b/{id}"), nil, msg(false, "https://ex.com/b/7"), true},
		{"alternate topic matches", sub("https://ex.com/alt"), nil, msg(false, "https://ex.com/canonical", "https://ex.com/alt"), true},
		{"star, public", sub("*"), nil, msg(false, "anything"), true},
		{"star does not match the hub topic alone", sub("*"), nil, &pubsub.Message{Topics: []string{HubTopic}}, false},
		{"star does not match the subscriptions topic alone", sub("*"), nil, &pubsub.Message{Topics: []string{SubscriptionsTopic}}, false},
		{"hub topic as an exact selector matches nothing", sub(HubTopic), nil, msg(false, "x"), false},
		{"private, no token", sub("*"), nil, msg(true, "https://ex.com/a"), false},
		{"private, claim selects the topic", sub("https://ex.com/{x}"), claim("https://ex.com/a"), msg(true, "https://ex.com/a"), true},
		{"private, claim is a template", sub("https://ex.com/{x}"), claim("https://ex.com/{y}"), msg(true, "https://ex.com/a"), true},
		{"private, claim selects another topic", sub("*"), claim("https://ex.com/b"), msg(true, "https://ex.com/a"), false},
		{"private, claim selects an alternate", sub("https://ex.com/a"), claim("https://ex.com/alt"), msg(true, "https://ex.com/a", "https://ex.com/alt"), true},
		{"private, claim star", sub("https://ex.com/a"), claim("*"), msg(true, "https://ex.com/a"), true},
		{"private, claim selects the hub topic only", sub("*"), claim(HubTopic), msg(true, "https://ex.com/a"), false},
		{"private, claim ok but not subscribed", sub("https://ex.com/b"), claim("*"), msg(true, "https://ex.com/a"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sub.match(tc.claim.Match)(tc.msg); got != tc.want {
				t.Errorf("match = %v, want %v", got, tc.want)
			}
		})
	}
}

// Exact selectors become hub topics; templates and "*" make the
// subscription follow HubTopic; duplicates count once.
func TestParseSelectors(t *testing.T) {
	withSubs := &Handler{o: Options{MaxTopics: 3, Subscriptions: true}}
	if s, err := withSubs.parseSelectors(map[string][]string{"topic": {"a/{b}"}}); err != nil || strings.Join(s.topics, " ") != HubTopic+" "+SubscriptionsTopic {
		t.Fatalf("with subscriptions on, a template follows %v (%v)", s.topics, err)
	}
	h := &Handler{o: Options{MaxTopics: 3}}
	for _, tc := range []struct {
		name      string
		selectors []string
		topics    string
		err       string
	}{
		{"exact only", []string{"a", "b"}, "a b", ""},
		{"template", []string{"a", "b/{id}"}, "a " + HubTopic, ""},
		{"star", []string{"*"}, HubTopic, ""},
		{"duplicates", []string{"a", "a", "a", "a"}, "a", "too many"},
		{"none", nil, "", "missing"},
		{"too many", []string{"a", "b", "c", "d"}, "", "too many"},
		{"exact too long for a topic", []string{strings.Repeat("x", 300)}, "", "longer than"},
		{"template may be longer", []string{strings.Repeat("x", 300) + "{id}"}, HubTopic, ""},
		{"control character", []string{"a\tb"}, "", "control character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := h.parseSelectors(map[string][]string{"topic": tc.selectors})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(s.topics, " "); got != tc.topics {
				t.Errorf("topics %q, want %q", got, tc.topics)
			}
		})
	}
}

// The hub's reserved namespace: whatever holds its path, and whatever
// resolves to it once normalized (the current protocol's rule).
func TestReserved(t *testing.T) {
	for topic, want := range map[string]bool{
		"/.well-known/mercure":                        true,
		"/.well-known/mercure/subscriptions/a/b":      true,
		"https://evil.example/.well-known/mercure/x":  true,
		"x/.well-known/mercure":                       true,
		"https://hub.example/.well-known/%6Dercure/x": true,
		"https://hub.example/.well-known/mercur%65":   true,
		"/.well-known/./mercure":                      true,
		"/a/b/../../.well-known/mercure/x":            true,
		"./.well-known/mercure":                       true,
		"https://hub.example/.well-known/mercure%2Fx": true, // decoded: stricter than the protocol
		"https://example.com/books/1":                 false,
		"https://example.com/.well-known/mercurial":   false,
		"mercure":                    false,
		"/.well-known/":              false,
		"https://example.com/a/../b": false,
		"%zz/.well-known/%6Dercure":  false, // not a URL reference
		"urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427": false,
	} {
		if got := Reserved(topic); got != want {
			t.Errorf("Reserved(%q) = %v, want %v", topic, got, want)
		}
	}
}

// The match parameters beside topic: exact matchers are hub topics, URL
// patterns and "*" follow HubTopic, the same selector twice counts once,
// the whole match namespace is checked.
func TestParseMatchParameters(t *testing.T) {
	h := &Handler{o: Options{MaxTopics: 4}}
	for _, tc := range []struct {
		name   string
		q      map[string][]string
		topics string
		n      int // selectors
		err    string
	}{
		{"match", map[string][]string{"match": {"a", "b"}}, "a b", 2, ""},
		{"match_exact is match", map[string][]string{"match": {"a"}, "match_exact": {"a"}}, "a", 1, ""},
		{"match and topic are different selectors", map[string][]string{"match": {"a"}, "topic": {"a"}}, "a", 2, ""},
		{"match *", map[string][]string{"match": {"*"}}, HubTopic, 1, ""},
		{"match_urlpattern", map[string][]string{"match_urlpattern": {"/b/:id"}, "match": {"a"}}, "a " + HubTopic, 2, ""},
		{"a URL pattern is not a template", map[string][]string{"match_urlpattern": {"/b/{id}"}}, HubTopic, 1, ""},
		{"draft spellings", map[string][]string{"matchURLPattern": {"/b/:id"}, "matchExact": {"a"}}, "a " + HubTopic, 2, ""},
		{"all kinds count toward the limit", map[string][]string{"match": {"a", "b"}, "topic": {"c"}, "match_urlpattern": {"/d", "/e"}}, "", 0, "too many"},
		{"unknown type", map[string][]string{"match_regexp": {"a"}}, "", 0, "unknown topic matcher parameter"},
		{"case matters", map[string][]string{"MATCH": {"a"}}, "", 0, "unknown topic matcher parameter"},
		{"bad pattern", map[string][]string{"match_urlpattern": {"("}}, "", 0, "well-formed"},
		{"nothing", map[string][]string{"other": {"a"}}, "", 0, "missing topic selector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := h.parseSelectors(tc.q)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(s.topics, " "); got != tc.topics || len(s.selectors) != tc.n {
				t.Fatalf("topics %q with %d selectors, want %q with %d", got, len(s.selectors), tc.topics, tc.n)
			}
		})
	}
}
