// Package topicmatch implements the topic matchers of the current Mercure
// protocol (draft-dunglas-mercure, the reference hub's 1.0 line): the
// "exact" matcher type, compared byte for byte, and the "urlpattern"
// matcher type, a WHATWG URL Pattern evaluated with
// github.com/dunglas/go-urlpattern, the implementation the reference hub
// uses (its regular expressions are Go's RE2: matching is linear in the
// topic's length whatever the pattern). The value "*" selects every topic
// whatever the type.
//
// The package knows nothing of HTTP or tokens: the Mercure endpoint
// compiles subscribers' match and match_urlpattern parameters with it, and
// internal/auth the topics of tokens' authorization_details.
//
// Matchers are immutable once compiled and safe for concurrent use. A URL
// pattern keeps a small bounded cache of its recent results, so that many
// subscribers sharing a pattern (the usual case) evaluate it once per
// topic; a Cache shares compiled matchers, and with them those caches.
//
// Lock order: Cache.mu and Matcher.mu are never held together, nor while
// a pattern is compiled or evaluated.
package topicmatch

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/dunglas/go-urlpattern"
)

// Type is a topic matcher type, by its canonical name.
type Type string

// The matcher types the protocol defines.
const (
	// Exact compares the topic and the matcher byte for byte.
	Exact Type = "exact"
	// URLPattern evaluates the matcher as a WHATWG URL Pattern.
	URLPattern Type = "urlpattern"
)

// Wildcard is the reserved matcher value that selects every topic,
// whatever the matcher type.
const Wildcard = "*"

// MaxLen is the longest matcher accepted, in bytes.
const MaxLen = 1024

// MaxGroups bounds the groups (regular expression groups, wildcards) of a
// URL pattern. With it, MaxLen, no bounded repetition ({n,m}) inside a
// regular expression group and topics of at most MaxTopicLen bytes, a
// pattern compiles within milliseconds and evaluates within a fraction of
// one (BenchmarkWorstCase measures the costliest accepted patterns): the evaluation cost limit the protocol asks
// of hubs, enforced when a pattern is compiled.
const MaxGroups = 32

// MaxTopicLen is the longest topic a URL pattern is evaluated against; a
// longer one is not matched. Herald's topics are far shorter (256 bytes).
const MaxTopicLen = 4096

// Base is the URL relative patterns and relative topics are resolved
// against. The protocol resolves them against the hub's own URL; Herald
// does not know the public URL it is reached by, so it uses a fixed one in
// the .invalid domain (RFC 6761), as the reference hub does when its
// public URL is not configured: a relative pattern matches relative topics
// (the subscription events' among them), an absolute one absolute topics.
const Base = "https://hub.invalid/"

// ErrInvalid is returned (wrapped) for a matcher that cannot be compiled.
var ErrInvalid = errors.New("topicmatch: invalid topic matcher")

// ParseType returns the type named name: a canonical name ("exact",
// "urlpattern"). Names are case-sensitive, as the protocol has them.
func ParseType(name string) (Type, bool) {
	switch Type(name) {
	case Exact, URLPattern:
		return Type(name), true
	}
	return "", false
}

// CheckValue reports why s cannot be a matcher, topic or event id of the
// protocol, or nil: it must be valid UTF-8 without C0 or C1 control
// characters, DEL, or Unicode format characters (general category Cf:
// bidirectional and zero-width controls, which are invisible and enable
// identifier spoofing).
func CheckValue(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		switch {
		case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0:
			return fmt.Errorf("contains control character %U", r)
		case r >= 0xa0 && unicode.Is(unicode.Cf, r):
			return fmt.Errorf("contains format character %U (invisible: a spoofing risk)", r)
		}
	}
	return nil
}

// Matcher is a compiled topic matcher.
type Matcher struct {
	typ Type
	raw string
	any bool
	pat *urlpattern.URLPattern // URLPattern only

	mu   sync.Mutex
	seen map[string]bool // recent results of pat, bounded by resultCacheSize
}

// resultCacheSize bounds each URL pattern's cache of results.
const resultCacheSize = 1024

// Compile compiles pattern as a matcher of type t. The pattern must be 1 to
// MaxLen bytes and pass CheckValue; a URLPattern must be a well-formed URL
// Pattern (relative ones are resolved against Base). The error wraps
// ErrInvalid and says what is wrong without echoing the pattern parser's
// internals.
func Compile(t Type, pattern string) (*Matcher, error) {
	if _, ok := ParseType(string(t)); !ok {
		return nil, fmt.Errorf("%w: unknown matcher type %q (use %q or %q)", ErrInvalid, t, Exact, URLPattern)
	}
	switch {
	case pattern == "":
		return nil, fmt.Errorf("%w: empty", ErrInvalid)
	case len(pattern) > MaxLen:
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxLen)
	}
	if err := CheckValue(pattern); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	m := &Matcher{typ: t, raw: pattern, any: pattern == Wildcard}
	if t == URLPattern && !m.any {
		if err := checkCost(pattern); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		p, err := compilePattern(pattern)
		if err != nil {
			return nil, fmt.Errorf("%w: not a well-formed URL pattern: %s", ErrInvalid, describe(err))
		}
		m.pat = p
		m.seen = make(map[string]bool)
	}
	return m, nil
}

// checkCost refuses a URL pattern too costly to compile or evaluate: more
// than MaxGroups groups, or a bounded repetition ({n,m}) inside a regular
// expression group, which RE2 compiles by copying the repeated expression
// up to a thousand times.
func checkCost(pattern string) error {
	groups, depth := 0, 0
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case c == '\\':
			i++ // an escaped character is literal
		case c == '(':
			depth++
			groups++
		case c == ')' && depth > 0:
			depth--
		case c == '*':
			groups++
		case c == '{' && depth > 0 && i+1 < len(pattern) && (pattern[i+1] >= '0' && pattern[i+1] <= '9' || pattern[i+1] == ','):
			return errors.New("bounded repetitions ({n,m}) in regular expression groups are not supported: too costly to evaluate")
		}
	}
	if groups > MaxGroups {
		return fmt.Errorf("more than %d groups and wildcards", MaxGroups)
	}
	return nil
}

// compilePattern calls the URL Pattern constructor, turning a panic of the
// parser (a bug there, on an input nobody foresaw) into an error: a
// client's pattern must never bring the server down.
func compilePattern(pattern string) (p *urlpattern.URLPattern, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("pattern parser failed: %v", r)
		}
	}()
	// A nil Options keeps ignoreCase off, as the protocol requires.
	return urlpattern.New(pattern, Base, nil)
}

// describe returns a readable reason for a pattern error. The parser's
// type errors print its internal state (pointers included): keep the
// reason, drop the dump.
func describe(err error) string {
	s := err.Error()
	if i := strings.Index(s, ": &"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, "&urlpattern."); i >= 0 {
		s = strings.TrimSpace(strings.TrimSuffix(s[:i], ":"))
	}
	if s == "" || s == "type error" {
		s = "syntax error"
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// Type returns the matcher's type.
func (m *Matcher) Type() Type { return m.typ }

// String returns the matcher as it was written.
func (m *Matcher) String() string { return m.raw }

// Exact reports whether the matcher selects only the topic equal to it:
// an exact matcher other than the wildcard.
func (m *Matcher) Exact() bool { return m.typ == Exact && !m.any }

// Match reports whether the matcher selects topic. A topic that is not a
// URL (relative to Base) is never selected by a URL pattern.
func (m *Matcher) Match(topic string) bool {
	switch {
	case m.any:
		return true
	case m.typ == Exact:
		return topic == m.raw
	case len(topic) > MaxTopicLen:
		return false
	}
	m.mu.Lock()
	r, ok := m.seen[topic]
	m.mu.Unlock()
	if ok {
		return r
	}
	r = m.test(topic)
	m.mu.Lock()
	if len(m.seen) >= resultCacheSize {
		clear(m.seen) // bounded: a flood of distinct topics cannot grow it
	}
	m.seen[topic] = r
	m.mu.Unlock()
	return r
}

// test evaluates the URL pattern. An absolute topic is parsed alone (the
// base would be ignored anyway, and parsing it costs as much as the
// topic); a relative one against Base.
func (m *Matcher) test(topic string) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false // a parser bug: the topic is not matched
		}
	}()
	base := Base
	if hasScheme(topic) {
		base = ""
	}
	return m.pat.Test(topic, base)
}

// hasScheme reports whether s starts with a URL scheme followed by ":"
// (ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"), which makes the URL
// parser read it as an absolute URL whatever the base.
func hasScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return true
		default:
			return false
		}
	}
	return false
}

// Cache compiles matchers once and shares them: tokens are verified and
// subscriptions opened on every request, with a handful of distinct
// matchers in most deployments, and a shared URL pattern shares its cache
// of results. It is bounded (cleared when full) and safe for concurrent
// use. The zero value is not usable: use NewCache.
type Cache struct {
	mu  sync.RWMutex
	max int
	m   map[cacheKey]*Matcher
}

type cacheKey struct {
	t       Type
	pattern string
}

// NewCache returns a cache of at most max matchers.
func NewCache(max int) *Cache {
	return &Cache{max: max, m: make(map[cacheKey]*Matcher)}
}

// Shared is the process's cache of compiled matchers.
var Shared = NewCache(4096)

// Compile returns the compiled matcher, from the cache when it is there.
func (c *Cache) Compile(t Type, pattern string) (*Matcher, error) {
	k := cacheKey{t, pattern}
	c.mu.RLock()
	m, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return m, nil
	}
	m, err := Compile(t, pattern)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = m
	c.mu.Unlock()
	return m, nil
}
