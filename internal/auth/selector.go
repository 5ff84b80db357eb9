package auth

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

// Matcher reports whether a topic is selected. Implementations must be safe
// for concurrent use.
type Matcher interface {
	Match(topic string) bool
}

// Compiler turns a topic selector, as written in a token's claims, into a
// Matcher. It must be safe for concurrent use.
type Compiler interface {
	Compile(selector string) (Matcher, error)
}

// CompilerFunc adapts a function to the Compiler interface. A Mercure
// endpoint, for instance, compiles selectors holding "{" as RFC 6570 URI
// templates and hands the others to Patterns:
//
//	auth.CompilerFunc(func(sel string) (auth.Matcher, error) {
//		if strings.Contains(sel, "{") {
//			return compileTemplate(sel)
//		}
//		return auth.Patterns.Compile(sel)
//	})
type CompilerFunc func(selector string) (Matcher, error)

// Compile calls f.
func (f CompilerFunc) Compile(selector string) (Matcher, error) { return f(selector) }

// MaxSelectorLen is the longest selector accepted, in bytes.
const MaxSelectorLen = 1024

// MaxSelectors is the most selectors one claim (publish or subscribe) may
// hold.
const MaxSelectors = 1000

// ErrInvalidSelector is returned (wrapped) for selectors that cannot be
// compiled.
var ErrInvalidSelector = errors.New("auth: invalid topic selector")

// Patterns is the default Compiler: it compiles selectors with
// CompilePattern and caches the results.
var Patterns Compiler = newPatternCache(4096)

// CompilePattern compiles Herald's selector syntax:
//
//   - "*" alone selects every topic;
//   - a selector without "*" selects the topic equal to it;
//   - in any other selector, "*" matches any run of characters other than
//     "/" (within one path segment) and "**" matches any run of characters,
//     "/" included. So "orders/*" selects "orders/42" but not
//     "orders/42/items", and "orgs/7/**" selects every topic under "orgs/7/".
//
// There is no escape: a "*" in a selector is always a wildcard (it also
// matches a literal "*"). Selectors holding "{" are reserved for URI
// templates (the Mercure endpoint's compiler); this compiler takes "{"
// literally.
func CompilePattern(selector string) (Matcher, error) {
	switch {
	case selector == "":
		return nil, fmt.Errorf("%w: empty", ErrInvalidSelector)
	case len(selector) > MaxSelectorLen:
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidSelector, MaxSelectorLen)
	case !utf8.ValidString(selector):
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrInvalidSelector)
	case selector == "*":
		return anyTopic{}, nil
	case !strings.Contains(selector, "*"):
		return exact(selector), nil
	}
	var b strings.Builder
	b.WriteString(`(?s)^`)
	rest := selector
	for rest != "" {
		i := strings.IndexByte(rest, '*')
		if i < 0 {
			b.WriteString(regexp.QuoteMeta(rest))
			break
		}
		b.WriteString(regexp.QuoteMeta(rest[:i]))
		rest = rest[i:]
		if strings.HasPrefix(rest, "**") {
			b.WriteString(`.*`)
			rest = strings.TrimLeft(rest, "*")
		} else {
			b.WriteString(`[^/]*`)
			rest = rest[1:]
		}
	}
	b.WriteString(`$`)
	// RE2: matching is linear in the topic's length, whatever the pattern.
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrInvalidSelector, selector, err)
	}
	return pattern{re}, nil
}

type anyTopic struct{}

func (anyTopic) Match(string) bool { return true }
func (anyTopic) String() string    { return "*" }

type exact string

func (e exact) Match(topic string) bool { return string(e) == topic }
func (e exact) String() string          { return string(e) }

type pattern struct{ re *regexp.Regexp }

func (p pattern) Match(topic string) bool { return p.re.MatchString(topic) }

// patternCache memoizes CompilePattern: tokens are verified on every
// request, and most deployments use a handful of selectors.
type patternCache struct {
	mu  sync.RWMutex
	max int
	m   map[string]Matcher
}

func newPatternCache(max int) *patternCache {
	return &patternCache{max: max, m: make(map[string]Matcher)}
}

func (c *patternCache) Compile(selector string) (Matcher, error) {
	c.mu.RLock()
	m, ok := c.m[selector]
	c.mu.RUnlock()
	if ok {
		return m, nil
	}
	m, err := CompilePattern(selector)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m) // crude, but bounded: a flood of distinct selectors cannot grow it
	}
	c.m[selector] = m
	c.mu.Unlock()
	return m, nil
}

// Selectors is a compiled list of topic selectors: it matches a topic when
// one of its matchers does.
type Selectors []Matcher

// Match reports whether one of the selectors matches topic.
func (s Selectors) Match(topic string) bool {
	for _, m := range s {
		if m.Match(topic) {
			return true
		}
	}
	return false
}

// CompileSelectors compiles each selector with c (Patterns when nil).
func CompileSelectors(c Compiler, selectors []string) (Selectors, error) {
	if c == nil {
		c = Patterns
	}
	if len(selectors) > MaxSelectors {
		return nil, fmt.Errorf("%w: more than %d selectors", ErrInvalidSelector, MaxSelectors)
	}
	out := make(Selectors, 0, len(selectors))
	for _, sel := range selectors {
		m, err := c.Compile(sel)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
