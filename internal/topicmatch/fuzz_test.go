package topicmatch

import (
	"errors"
	"testing"
)

// FuzzCompile compiles any pattern of either type and matches it against
// any topic: no panic, a refusal always wraps ErrInvalid, "*" selects
// everything, an exact matcher selects exactly itself, and an answer from
// the cache equals a fresh evaluation.
func FuzzCompile(f *testing.F) {
	for _, s := range [][2]string{
		{"https://example.com/books/:id", "https://example.com/books/1"},
		{"/books/:id(\\d+)", "/books/12"},
		{"https://*.example.com/{a/}?:b*", "https://x.example.com/a/b/c"},
		{"*", "anything"},
		{"{", "{"},
		{"https://example.com/(", "https://example.com/("},
		{"urn:foo:*", "urn:foo:bar"},
		{":a:b", "/x"},
		{"\\", "\\"},
		{"https://[::1]:8080/:p", "https://[::1]:8080/x"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, topic string) {
		for _, typ := range []Type{Exact, URLPattern} {
			m, err := Compile(typ, pattern)
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("Compile(%s, %q): %v does not wrap ErrInvalid", typ, pattern, err)
				}
				continue
			}
			got := m.Match(topic)
			switch {
			case pattern == Wildcard && !got:
				t.Fatalf("%s %q did not select %q", typ, pattern, topic)
			case typ == Exact && got != (pattern == Wildcard || topic == pattern):
				t.Fatalf("exact %q selects %q: %v", pattern, topic, got)
			case typ == URLPattern && pattern != Wildcard && got != m.test(topic):
				t.Fatalf("urlpattern %q on %q: cached %v differs from a fresh evaluation", pattern, topic, got)
			}
			if again := m.Match(topic); again != got {
				t.Fatalf("%s %q on %q: %v then %v", typ, pattern, topic, got, again)
			}
		}
	})
}
