package topicmatch

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		typ     Type
		pattern string
		topic   string
		want    bool
	}{
		// exact: byte for byte, no normalization, no resolution.
		{Exact, "https://example.com/books/1", "https://example.com/books/1", true},
		{Exact, "https://example.com/books/1", "https://example.com/books/1/", false},
		{Exact, "https://example.com/books/1", "https://EXAMPLE.com/books/1", false},
		{Exact, "https://example.com/books/:id", "https://example.com/books/1", false},
		{Exact, "https://example.com/books/{id}", "https://example.com/books/1", false},
		{Exact, "books/1", "books/1", true},
		{Exact, "/books/1", "https://hub.invalid/books/1", false},
		// "*" selects every topic, whatever the type.
		{Exact, "*", "anything at all", true},
		{URLPattern, "*", "not a URL", true},
		// urlpattern: named groups are one path segment.
		{URLPattern, "https://example.com/books/:id", "https://example.com/books/1", true},
		{URLPattern, "https://example.com/books/:id", "https://example.com/books/1/chapters", false},
		{URLPattern, "https://example.com/books/:id", "https://example.com/users/1", false},
		{URLPattern, "https://example.com/books/:id", "https://other.example/books/1", false},
		{URLPattern, "https://example.com/books/:id", "http://example.com/books/1", false},
		// The host is case-insensitive (URL canonicalization), the path not.
		{URLPattern, "https://example.com/books/:id", "https://EXAMPLE.com/books/1", true},
		{URLPattern, "https://example.com/books/:id", "https://example.com/Books/1", false},
		// Unspecified search and hash are wildcards.
		{URLPattern, "https://example.com/books/:id", "https://example.com/books/1?page=2#top", true},
		// Wildcards, optional groups, regular expression groups.
		{URLPattern, "https://example.com/*", "https://example.com/a/b/c", true},
		{URLPattern, "https://example.com/books/:id(\\d+)", "https://example.com/books/42", true},
		{URLPattern, "https://example.com/books/:id(\\d+)", "https://example.com/books/abc", false},
		{URLPattern, "https://example.com/books/:id?", "https://example.com/books", true},
		{URLPattern, "https://example.com/{books/}?:id", "https://example.com/7", true},
		{URLPattern, "https://*.example.com/feed", "https://a.example.com/feed", true},
		// Relative patterns and topics resolve against the same base.
		{URLPattern, "/books/:id", "/books/1", true},
		{URLPattern, "/books/:id", "/users/1", false},
		{URLPattern, "/books/:id", "https://example.com/books/1", false},
		{URLPattern, "/.well-known/mercure/subscriptions/:type/:match/:sub", "/.well-known/mercure/subscriptions/exact/a%2Fb/urn%3Auuid%3A1", true},
		{URLPattern, "/.well-known/mercure/subscriptions{/:type}?{/:match}?{/:sub}?", "/.well-known/mercure/subscriptions", true},
		// A topic that is no URL is never selected by a URL pattern.
		{URLPattern, "https://example.com/:id", "https://exa mple.com/1", false},
		{URLPattern, "https://example.com/:id", "http://[::1", false},
	} {
		t.Run(fmt.Sprintf("%s %s %s", c.typ, c.pattern, c.topic), func(t *testing.T) {
			m, err := Compile(c.typ, c.pattern)
			if err != nil {
				t.Fatal(err)
			}
			// Twice: the second answer comes from the cache of results.
			for range 2 {
				if got := m.Match(c.topic); got != c.want {
					t.Fatalf("Match = %v, want %v", got, c.want)
				}
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	for _, c := range []struct {
		typ     Type
		pattern string
		want    string
	}{
		{Exact, "", "empty"},
		{URLPattern, "", "empty"},
		{Exact, strings.Repeat("a", MaxLen+1), "longer than"},
		{Exact, "a\nb", "control character"},
		{Exact, "a\u0085b", "control character"},
		{Exact, "a\x7fb", "control character"},
		{Exact, "a\u200bb", "format character"},
		{Exact, "a\u202eb", "format character"},
		{Exact, "\xff", "UTF-8"},
		{URLPattern, "https://example.com/(", "URL pattern"},
		{URLPattern, "https://example.com/:id(a|(b))", "URL pattern"},
		{URLPattern, "{", "URL pattern"},
		{URLPattern, "https://exa mple.com/", "URL pattern"},
		{URLPattern, "/(a{1,1000})", "bounded repetitions"},
		{URLPattern, "/([a-z]{,9})", "bounded repetitions"},
		{URLPattern, "/" + strings.Repeat("*", MaxGroups+1), "more than 32 groups"},
		{URLPattern, "/" + strings.Repeat("(a)", MaxGroups+1), "more than 32 groups"},
		{"regexp", ".*", "unknown matcher type"},
		{"URLPattern", "/a", "unknown matcher type"},
	} {
		t.Run(fmt.Sprintf("%s %q", c.typ, c.pattern), func(t *testing.T) {
			_, err := Compile(c.typ, c.pattern)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrInvalid saying %q", err, c.want)
			}
			if strings.Contains(err.Error(), "0x") || strings.Contains(err.Error(), "&urlpattern") {
				t.Fatalf("err %q shows the parser's internals", err)
			}
		})
	}
}

// TestCostLimits: what the cost limits let through.
func TestCostLimits(t *testing.T) {
	for _, p := range []string{
		"/" + strings.Repeat("*", MaxGroups),
		"/books{/:id}?",   // a group of text, not a repetition
		"/a\\(b{1,2}",     // escaped: no regular expression group
		"/:id(\\d+){/x}?", // braces after the group
		"/{1,2}",          // literal text in a group
	} {
		if _, err := Compile(URLPattern, p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	long := "https://example.com/" + strings.Repeat("a", MaxTopicLen)
	m, _ := Compile(URLPattern, "https://example.com/*")
	if m.Match(long) {
		t.Error("a topic over MaxTopicLen was evaluated")
	}
}

func TestParseType(t *testing.T) {
	for name, want := range map[string]bool{"exact": true, "urlpattern": true, "Exact": false, "URLPattern": false, "": false, "regexp": false} {
		if _, ok := ParseType(name); ok != want {
			t.Errorf("ParseType(%q) ok = %v, want %v", name, ok, want)
		}
	}
}

func TestHasScheme(t *testing.T) {
	for s, want := range map[string]bool{"https://a": true, "urn:x": true, "a+b.c-d:x": true, "/a:b": false, "a/b:c": false, ":x": false, "1a:x": false, "abc": false, "": false} {
		if got := hasScheme(s); got != want {
			t.Errorf("hasScheme(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestResultCacheBounded: a flood of distinct topics cannot grow a
// pattern's cache of results.
func TestResultCacheBounded(t *testing.T) {
	m, err := Compile(URLPattern, "https://example.com/books/:id")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 * resultCacheSize {
		want := i%2 == 0
		topic := fmt.Sprintf("https://example.com/books/%d", i)
		if !want {
			topic = fmt.Sprintf("https://example.com/users/%d", i)
		}
		if m.Match(topic) != want {
			t.Fatalf("Match(%q) != %v", topic, want)
		}
	}
	m.mu.Lock()
	n := len(m.seen)
	m.mu.Unlock()
	if n > resultCacheSize {
		t.Fatalf("%d cached results, over %d", n, resultCacheSize)
	}
}

// TestCacheShares: one compiled matcher per (type, pattern), safe under
// concurrent use; the cache is bounded.
func TestCacheShares(t *testing.T) {
	c := NewCache(8)
	a, _ := c.Compile(URLPattern, "/a/:x")
	b, _ := c.Compile(URLPattern, "/a/:x")
	e, _ := c.Compile(Exact, "/a/:x")
	if a != b || a == e {
		t.Fatal("the cache must share a matcher per type and pattern")
	}
	if _, err := c.Compile(URLPattern, "("); err == nil {
		t.Fatal("an invalid pattern compiled")
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				m, err := c.Compile(URLPattern, fmt.Sprintf("/g%d/:x", i%20))
				if err != nil {
					t.Error(err)
					return
				}
				if !m.Match(fmt.Sprintf("/g%d/%d", i%20, g)) {
					t.Error("no match")
					return
				}
			}
		}()
	}
	wg.Wait()
	c.mu.RLock()
	n := len(c.m)
	c.mu.RUnlock()
	if n > 8 {
		t.Fatalf("%d cached matchers, over 8", n)
	}
}

// BenchmarkMatch: a URL pattern against a new topic each time (the
// library's cost) and against a recurring one (the cache's).
func BenchmarkMatch(b *testing.B) {
	m, _ := Compile(URLPattern, "https://example.com/books/:id")
	b.Run("urlpattern-uncached", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			m.test("https://example.com/books/" + fmt.Sprint(i))
		}
	})
	b.Run("urlpattern-cached", func(b *testing.B) {
		for b.Loop() {
			m.Match("https://example.com/books/1")
		}
	})
	e, _ := Compile(Exact, "https://example.com/books/1")
	b.Run("exact", func(b *testing.B) {
		for b.Loop() {
			e.Match("https://example.com/books/1")
		}
	})
}

// BenchmarkWorstCase: the costliest patterns the limits accept, compiled
// and evaluated against a topic of Herald's maximum length.
func BenchmarkWorstCase(b *testing.B) {
	topic := "https://hub.invalid/" + strings.Repeat("ab/", 78)
	for name, p := range map[string]string{
		"wildcards":    "/" + strings.Repeat("*", MaxGroups) + strings.Repeat("x", MaxLen-MaxGroups-1),
		"regexp-stars": "/" + strings.Repeat("(.*)", MaxGroups/2),
		"classes":      "/" + strings.Repeat("[", MaxLen-1),
		"escapes":      "/" + strings.Repeat("\\a", (MaxLen-1)/2),
	} {
		b.Run(name+"/compile", func(b *testing.B) {
			for b.Loop() {
				if _, err := Compile(URLPattern, p); err != nil {
					b.Fatal(err)
				}
			}
		})
		m, _ := Compile(URLPattern, p)
		b.Run(name+"/match", func(b *testing.B) {
			for b.Loop() {
				m.test(topic)
			}
		})
	}
}
