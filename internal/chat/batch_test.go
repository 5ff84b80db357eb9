package chat

import (
	"fmt"
	"strings"
	"testing"
)

func TestBatcherFitsTheHistory(t *testing.T) {
	tests := []struct {
		name             string
		historyMaxEvents int
		maxTokens        int
		tokens           int
		wantPerToken     bool // every token is an event of its own
	}{
		{"no history limit", 0, 5000, 3000, true},
		{"answer fits", 1000, 960, 960, true},
		{"short answer, long max", 1000, 4096, 100, false},
		{"long answer", 1000, 4096, 4096, false},
		{"tiny history", 20, 100, 100, false},
		{"tiny history, short answer", 20, 100, 7, false},
		{"two events", 2, 50, 50, false},
		{"one event: tokens only in the final", 1, 50, 50, false},
		{"max equals budget", 11, 10, 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBatcher(tt.historyMaxEvents, tt.maxTokens)
			var want, got strings.Builder
			events, sizes := 0, []int{}
			for i := range tt.tokens {
				tok := fmt.Sprintf(" t%d", i)
				want.WriteString(tok)
				if b.add(tok) {
					s, ok := b.take()
					if !ok {
						t.Fatalf("add said publish, take had nothing")
					}
					got.WriteString(s)
					events++
					sizes = append(sizes, strings.Count(s, " "))
				}
			}
			if s, ok := b.take(); ok {
				got.WriteString(s)
				events++
				sizes = append(sizes, strings.Count(s, " "))
			}
			if tt.historyMaxEvents > 0 && events > tt.historyMaxEvents-1 {
				t.Errorf("%d token events, over the %d the history keeps besides the final", events, tt.historyMaxEvents-1)
			}
			if tt.historyMaxEvents != 1 && got.String() != want.String() {
				t.Errorf("token events carry %q..., want the whole answer", got.String()[:min(40, got.Len())])
			}
			if tt.historyMaxEvents == 1 && events != 0 {
				t.Errorf("%d token events with no room for any", events)
			}
			if tt.wantPerToken && events != tt.tokens {
				t.Errorf("%d events for %d tokens, want one per token", events, tt.tokens)
			}
			for i, n := range sizes {
				if n > 1 && tt.wantPerToken {
					t.Fatalf("event %d groups %d tokens", i, n)
				}
			}
		})
	}
}

func TestBatcherGroupsEvenly(t *testing.T) {
	// 4096 tokens into 999 events: groups of at most 5, never one huge event.
	b := newBatcher(1000, 4096)
	largest, events := 0, 0
	for range 4096 {
		if b.add("x") {
			s, _ := b.take()
			largest = max(largest, len(s))
			events++
		}
	}
	if s, ok := b.take(); ok {
		largest = max(largest, len(s))
		events++
	}
	if events > 999 || largest > 5 {
		t.Fatalf("%d events, largest %d tokens; want ≤ 999 events of ≤ 5 tokens", events, largest)
	}
}

func TestLineEnds(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"a\nb", "c"}, "a\nbc"},
		{[]string{"a\r\nb"}, "a\nb"},
		{[]string{"a\r", "\nb"}, "a\nb"},
		{[]string{"a\r", "b"}, "a\nb"},
		{[]string{"\r", "\r", "\n"}, "\n\n"},
		{[]string{"a\r", "\n", "\n"}, "a\n\n"},
		{[]string{"  two  spaces ", "\n\n"}, "  two  spaces \n\n"},
	}
	for _, tt := range tests {
		var l lineEnds
		var got strings.Builder
		for _, s := range tt.in {
			got.WriteString(l.normalize(s))
		}
		if got.String() != tt.want {
			t.Errorf("normalize(%q) = %q, want %q", tt.in, got.String(), tt.want)
		}
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := newID()
		if !validID(id) || seen[id] {
			t.Fatalf("newID() = %q: invalid or repeated", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "abc", strings.Repeat("A", 26), strings.Repeat("a", 25) + "1", strings.Repeat("a", 27), "../../etc/passwd"} {
		if validID(bad) {
			t.Errorf("validID(%q) = true", bad)
		}
	}
}
