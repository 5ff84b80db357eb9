package mercure

import (
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
)

// Whatever the stored metadata, unwrap never fails, and what wrap stores
// comes back unchanged.
func FuzzEnvelope(f *testing.F) {
	f.Add("urn:uuid:1", int64(1500), "3000")
	f.Add("", int64(0), "x")
	f.Add("a&b=c%", int64(1), "-5")
	f.Fuzz(func(t *testing.T, id string, retry int64, rawRetry string) {
		unwrap(&pubsub.Message{Meta: map[string]string{metaID: id, metaRetry: rawRetry}}) // any stored metadata: no panic
		if retry < 0 || retry > maxRetryMS {
			return
		}
		m := meta{ID: id, Retry: time.Duration(retry) * time.Millisecond}
		if got := unwrap(&pubsub.Message{Meta: wrap(m)}); got != m {
			t.Fatalf("round trip of %+v: %+v", m, got)
		}
	})
}

// Any selector compiles or is refused, and matching never panics.
func FuzzSelector(f *testing.F) {
	for _, s := range []string{"*", "https://example.com/{id}", "{+x}{/y}{?z,w}", "{", "a{b}c{", "{%zz}"} {
		f.Add(s, "https://example.com/1")
	}
	f.Fuzz(func(t *testing.T, sel, topic string) {
		s, err := Compile(sel)
		if err != nil {
			return
		}
		if !s.Match(sel) {
			t.Fatalf("selector %q does not select itself", sel)
		}
		s.Match(topic)
	})
}

func BenchmarkSubscriptionMatch(b *testing.B) {
	h := &Handler{o: Options{MaxTopics: 10}}
	m := &pubsub.Message{Topics: []string{"https://example.com/books/42", HubTopic}}
	for _, sel := range []string{"https://example.com/books/42", "*", "https://example.com/books/{id}", "https://example.com/{+path}"} {
		b.Run(sel, func(b *testing.B) {
			s, err := h.parseSelectors(map[string][]string{"topic": {sel}})
			if err != nil {
				b.Fatal(err)
			}
			match := s.match(nil)
			for b.Loop() {
				if !match(m) {
					b.Fatal("no match")
				}
			}
		})
	}
}
