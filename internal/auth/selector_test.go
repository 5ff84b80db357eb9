package auth_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/heraldpush/herald/internal/auth"
)

func TestCompilePattern(t *testing.T) {
	tests := []struct {
		sel   string
		match []string
		miss  []string
	}{
		{"*", []string{"a", "a/b/c", "*", "https://example.com/books/1"}, nil},
		{"news", []string{"news"}, []string{"news/1", "new", "newsx", "News"}},
		{"orders/*", []string{"orders/42", "orders/", "orders/*"}, []string{"orders", "orders/42/items", "xorders/42"}},
		{"orgs/7/**", []string{"orgs/7/a", "orgs/7/a/b/c", "orgs/7/"}, []string{"orgs/7", "orgs/70/a", "orgs/8/a"}},
		{"*/status", []string{"job1/status", "/status"}, []string{"a/b/status", "job1/status/x"}},
		{"chat.*", []string{"chat.room", "chat."}, []string{"chatxroom", "chat.a/b"}},
		{"a+b(c)?[d]", []string{"a+b(c)?[d]"}, []string{"aab(c)?[d]", "a+bc"}},
		{"a+b*(c)", []string{"a+bXX(c)"}, []string{"a+bX/X(c)"}},
		{"books/{id}", []string{"books/{id}"}, []string{"books/1"}}, // templates are the Mercure compiler's
		{"**", []string{"a/b", ""}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.sel, func(t *testing.T) {
			m, err := auth.CompilePattern(tt.sel)
			if err != nil {
				t.Fatal(err)
			}
			for _, topic := range tt.match {
				if !m.Match(topic) {
					t.Errorf("%q does not match %q", tt.sel, topic)
				}
			}
			for _, topic := range tt.miss {
				if m.Match(topic) {
					t.Errorf("%q matches %q", tt.sel, topic)
				}
			}
		})
	}
}

func TestCompilePatternRejects(t *testing.T) {
	for _, sel := range []string{"", strings.Repeat("a", auth.MaxSelectorLen+1), "\xd0*", "a\xff"} {
		if _, err := auth.CompilePattern(sel); !errors.Is(err, auth.ErrInvalidSelector) {
			t.Errorf("CompilePattern(%.20q) = %v, want ErrInvalidSelector", sel, err)
		}
	}
	if _, err := auth.CompileSelectors(nil, make([]string, auth.MaxSelectors+1)); !errors.Is(err, auth.ErrInvalidSelector) {
		t.Errorf("too many selectors: err = %v", err)
	}
}

func TestCompilerPlugsIn(t *testing.T) {
	// A Mercure-like compiler: "{...}" selectors by another matcher, the rest
	// by Patterns.
	var templates int
	c := auth.CompilerFunc(func(sel string) (auth.Matcher, error) {
		if strings.Contains(sel, "{") {
			templates++
			prefix, _, _ := strings.Cut(sel, "{")
			return prefixMatcher(prefix), nil
		}
		return auth.Patterns.Compile(sel)
	})
	s, err := auth.CompileSelectors(c, []string{"https://ex.com/books/{id}", "news/*"})
	if err != nil {
		t.Fatal(err)
	}
	if templates != 1 || !s.Match("https://ex.com/books/1") || !s.Match("news/1") || s.Match("other") {
		t.Fatalf("plugged-in compiler not used as expected (templates=%d)", templates)
	}
}

type prefixMatcher string

func (p prefixMatcher) Match(topic string) bool { return strings.HasPrefix(topic, string(p)) }

// matchRef is a slow, obviously correct matcher for the pattern syntax.
func matchRef(sel, topic string) bool {
	if sel == "*" {
		return true
	}
	if !strings.Contains(sel, "*") {
		return sel == topic
	}
	var rec func(p, s string) bool
	rec = func(p, s string) bool {
		if p == "" {
			return s == ""
		}
		if strings.HasPrefix(p, "**") {
			rest := strings.TrimLeft(p, "*")
			for i := 0; i <= len(s); i++ {
				if rec(rest, s[i:]) {
					return true
				}
			}
			return false
		}
		if p[0] == '*' {
			for i := 0; i <= len(s); i++ {
				if i > 0 && s[i-1] == '/' {
					break
				}
				if rec(p[1:], s[i:]) {
					return true
				}
			}
			return false
		}
		return s != "" && s[0] == p[0] && rec(p[1:], s[1:])
	}
	return rec(sel, topic)
}

func FuzzSelector(f *testing.F) {
	for _, s := range [][2]string{{"orders/*", "orders/42"}, {"a/**/b", "a/x/y/b"}, {"*", "x"}, {"a*b*c", "a/b/c"}, {"**/x", "/x"}, {"a.b", "a.b"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, sel, topic string) {
		if len(sel) > 64 || len(topic) > 64 {
			return
		}
		m, err := auth.CompilePattern(sel)
		if err != nil {
			if sel != "" && utf8.ValidString(sel) {
				t.Fatalf("CompilePattern(%q): %v", sel, err)
			}
			return
		}
		if got, want := m.Match(topic), matchRef(sel, topic); got != want {
			t.Fatalf("CompilePattern(%q).Match(%q) = %v, want %v", sel, topic, got, want)
		}
	})
}
