package mercure

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/yosida95/uritemplate/v3"

	"github.com/heraldpush/herald/internal/auth"
)

// Selector is a compiled Mercure topic selector, as a subscriber gives it in
// a "topic" query parameter or a token lists it in its mercure claim. It is
// safe for concurrent use.
type Selector struct {
	raw string
	any bool
	re  *regexp.Regexp // URI template; nil for an exact selector
}

// Compile compiles a topic selector the way the Mercure protocol reads one:
//
//   - "*" selects every topic;
//   - a selector holding "{" that parses as an RFC 6570 URI template
//     selects the topic equal to it and every topic the template can
//     expand to (matched with an anchored RE2 expression, linear in the
//     topic's length);
//   - any other selector, a template that does not parse included,
//     selects the topic equal to it, byte for byte.
//
// A selector must be 1 to auth.MaxSelectorLen bytes of valid UTF-8 without
// control characters.
func Compile(sel string) (*Selector, error) {
	switch {
	case sel == "":
		return nil, fmt.Errorf("%w: empty", auth.ErrInvalidSelector)
	case len(sel) > auth.MaxSelectorLen:
		return nil, fmt.Errorf("%w: longer than %d bytes", auth.ErrInvalidSelector, auth.MaxSelectorLen)
	case !utf8.ValidString(sel):
		return nil, fmt.Errorf("%w: not valid UTF-8", auth.ErrInvalidSelector)
	}
	for _, r := range sel {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return nil, fmt.Errorf("%w: contains control character %U", auth.ErrInvalidSelector, r)
		}
	}
	s := &Selector{raw: sel, any: sel == "*"}
	if !s.any && strings.Contains(sel, "{") {
		if tpl, err := uritemplate.New(sel); err == nil {
			s.re = tpl.Regexp()
		}
	}
	return s, nil
}

// String returns the selector as it was written.
func (s *Selector) String() string { return s.raw }

// Exact reports whether the selector selects only the topic equal to it.
func (s *Selector) Exact() bool { return !s.any && s.re == nil }

// Match reports whether the selector selects topic.
func (s *Selector) Match(topic string) bool {
	switch {
	case s.any || topic == s.raw:
		return true
	case s.re != nil:
		return s.re.MatchString(topic)
	}
	return false
}

// Compiler compiles the selectors of tokens' mercure claims with Compile,
// caching the results: tokens are verified on every request and most
// deployments use a handful of selectors. It implements auth.Compiler.
var Compiler auth.Compiler = newCache(4096)

type cache struct {
	mu  sync.RWMutex
	max int
	m   map[string]*Selector
}

func newCache(max int) *cache { return &cache{max: max, m: make(map[string]*Selector)} }

// Compile returns the compiled selector, from the cache when it is there.
func (c *cache) Compile(sel string) (auth.Matcher, error) {
	return c.selector(sel)
}

func (c *cache) selector(sel string) (*Selector, error) {
	c.mu.RLock()
	s, ok := c.m[sel]
	c.mu.RUnlock()
	if ok {
		return s, nil
	}
	s, err := Compile(sel)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m) // bounded: a flood of distinct selectors cannot grow it
	}
	c.m[sel] = s
	c.mu.Unlock()
	return s, nil
}

// compileCached compiles sel through the shared cache.
func compileCached(sel string) (*Selector, error) {
	return Compiler.(*cache).selector(sel)
}
