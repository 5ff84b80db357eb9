package mercure

import (
	"strings"
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
	for _, sel := range []struct{ param, value string }{
		{"topic", "https://example.com/books/42"}, {"topic", "*"}, {"topic", "https://example.com/books/{id}"}, {"topic", "https://example.com/{+path}"},
		{"match", "https://example.com/books/42"}, {"match_urlpattern", "https://example.com/books/:id"},
	} {
		b.Run(sel.param+"="+sel.value, func(b *testing.B) {
			s, err := h.parseSelectors(map[string][]string{sel.param: {sel.value}})
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

// FuzzSubscriptionsPath: any path below the subscriptions API parses or is
// refused without a panic, and the IRI of every current-protocol
// subscription parses back to its matcher type, matcher and subscriber
// (the round trip of MatchSubscriptionID), as 0.x's SubscriptionID does.
func FuzzSubscriptionsPath(f *testing.F) {
	for _, s := range [][3]string{
		{"urlpattern", "https://example.com/books/:id", "urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6"},
		{"exact", "news", "x"},
		{"exact", "a/b%2F c+d", "%"},
		{"exact", "exact", "urlpattern"},
	} {
		f.Add(s[0], s[1], s[2], "/x/%zz")
	}
	f.Fuzz(func(t *testing.T, typ, match, subscriber, raw string) {
		parseSubscriptionsPath(SubscriptionsPath + raw) // no panic
		if typ != "exact" && typ != "urlpattern" || match == "" || subscriber == "" {
			return
		}
		q, err := parseSubscriptionsPath(MatchSubscriptionID(typ, match, subscriber))
		if err != nil || !q.single || q.typ != typ || q.match != match || q.subscriber != subscriber {
			t.Fatalf("MatchSubscriptionID(%q, %q, %q) parses as %+v, %v", typ, match, subscriber, q, err)
		}
		id := MatchSubscriptionID(typ, match, subscriber)
		q, err = parseSubscriptionsPath(id[:strings.LastIndex(id, "/")])
		if err != nil || q.single || q.typ != typ || q.match != match {
			t.Fatalf("the collection of %q parses as %+v, %v", id, q, err)
		}
		if typ != match { // a 0.x topic named like a matcher type reads the current protocol's way
			q, err = parseSubscriptionsPath(SubscriptionID(match, subscriber))
			if _, typed := map[string]bool{"exact": true, "urlpattern": true}[match]; !typed && (err != nil || !q.single || q.typ != "" || q.match != match || q.subscriber != subscriber) {
				t.Fatalf("SubscriptionID(%q, %q) parses as %+v, %v", match, subscriber, q, err)
			}
		}
	})
}

// FuzzReserved: the reserved namespace test never panics, and whatever
// contains the hub's path is reserved (TestReserved has the rest).
func FuzzReserved(f *testing.F) {
	for _, s := range []string{"/.well-known/mercure", "https://h/.well-known/%6Dercure/x", "/a/../.well-known/mercure", "https://example.com/books/1", "%zz", "./x", "mercure"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		r := Reserved(topic)
		if strings.Contains(topic, Path) && !r {
			t.Fatalf("%q holds the hub's path but is not reserved", topic)
		}
	})
}
