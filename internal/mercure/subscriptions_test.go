package mercure_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/mercure"
)

// subscriptionsTemplate selects every subscription event and API URL.
const subscriptionsTemplate = "/.well-known/mercure/subscriptions{/topic}{/subscriber}"

func decodeSubscription(t *testing.T, data string) mercure.Subscription {
	t.Helper()
	var s mercure.Subscription
	if err := json.Unmarshal([]byte(data), &s); err != nil {
		t.Fatalf("subscription event data %q: %v", data, err)
	}
	return s
}

// Subscription events: when a subscriber comes and goes, a private update
// per selector on /.well-known/mercure/subscriptions/{topic}/{subscriber},
// whose data is the subscription's JSON-LD document.
func TestSubscriptionEvents(t *testing.T) {
	srv := startHub(t, nil)
	watcher := token(t, subKey, auth.MercureClaim{Subscribe: []string{subscriptionsTemplate}})
	w := subscribe(t, srv.URL, sub{topics: []string{subscriptionsTemplate}, tok: watcher, how: "header"})
	anon := subscribe(t, srv.URL, sub{topics: []string{subscriptionsTemplate, "marker"}})
	// The watcher sees the anonymous subscriber arrive: one event per
	// selector, without payload.
	for _, topic := range []string{subscriptionsTemplate, "marker"} {
		if s := decodeSubscription(t, w.Next(t).Data); s.Topic != topic || !s.Active || s.Payload != nil {
			t.Fatalf("anonymous subscriber's event %+v", s)
		}
	}

	alice := token(t, subKey, auth.MercureClaim{Subscribe: []string{"x"}, Payload: json.RawMessage(`{"name":"alice"}`)})
	topics := []string{"https://example.com/books/{id}", "news"}
	a := subscribe(t, srv.URL, sub{topics: topics, tok: alice, how: "cookie"})

	var subscriber string
	for i, topic := range topics {
		ev := w.Next(t)
		s := decodeSubscription(t, ev.Data)
		if i == 0 {
			subscriber = s.Subscriber
		}
		want := mercure.Subscription{
			Context: "https://mercure.rocks/", ID: mercure.SubscriptionID(topic, subscriber), Type: "Subscription",
			Subscriber: subscriber, Topic: topic, Active: true, Payload: json.RawMessage(`{"name":"alice"}`),
		}
		if !strings.HasPrefix(subscriber, "urn:uuid:") || s.ID != want.ID || s.Context != want.Context || s.Type != want.Type ||
			s.Topic != topic || s.Subscriber != subscriber || !s.Active || string(s.Payload) != `{"name":"alice"}` {
			t.Fatalf("event %d: %+v\nwant %+v", i, s, want)
		}
	}
	if want := "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D/" + url.QueryEscape(subscriber); mercure.SubscriptionID(topics[0], subscriber) != want {
		t.Fatalf("subscription id %q, want %q", mercure.SubscriptionID(topics[0], subscriber), want)
	}

	a.Close()
	for _, topic := range topics {
		s := decodeSubscription(t, w.Next(t).Data)
		if s.Active || s.Topic != topic || s.Subscriber != subscriber {
			t.Fatalf("after the subscriber left: %+v, want active false for %q", s, topic)
		}
	}
	// They are private: an anonymous subscriber of the same template got
	// none of them.
	publish(t, srv.URL, form("topic", "marker", "data", "end"))
	if got := anon.UntilData(t, "end"); len(got) != 0 {
		t.Fatalf("anonymous subscriber got subscription events: %+v", got)
	}
}

// The subscriptions API lists this node's active subscriptions as JSON-LD,
// filtered by topic and subscriber; its lastEventID lets a client follow
// the changes from there without a gap.
func TestSubscriptionsAPI(t *testing.T) {
	srv := startHub(t, nil)
	api := token(t, subKey, auth.MercureClaim{Subscribe: []string{subscriptionsTemplate}})
	get := func(path, tok, etag string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		return do(t, req)
	}
	list := func(path string) mercure.Subscriptions {
		t.Helper()
		resp, body := get(path, api, "")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/ld+json" {
			t.Fatalf("GET %s: %d %s %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
		var c mercure.Subscriptions
		if err := json.Unmarshal([]byte(body), &c); err != nil {
			t.Fatal(err)
		}
		if c.Context != "https://mercure.rocks/" || c.Type != "Subscriptions" || c.ID != path || c.LastEventID == "" || c.Subscriptions == nil {
			t.Fatalf("collection %s", body)
		}
		return c
	}

	if c := list("/.well-known/mercure/subscriptions"); len(c.Subscriptions) != 0 || c.LastEventID != "earliest" {
		t.Fatalf("empty hub: %+v", c)
	}
	s1 := subscribe(t, srv.URL, sub{topics: []string{books1, "https://example.com/books/{id}"}, tok: token(t, subKey, auth.MercureClaim{Payload: json.RawMessage(`{"p":1}`)}), how: "header"})
	_ = subscribe(t, srv.URL, sub{topics: []string{books1}})
	_ = s1

	all := list("/.well-known/mercure/subscriptions")
	if len(all.Subscriptions) != 3 {
		t.Fatalf("all subscriptions: %+v", all.Subscriptions)
	}
	first := all.Subscriptions[0]
	if first.Topic != books1 || first.Type != "Subscription" || !first.Active || first.Context != "" || string(first.Payload) != `{"p":1}` ||
		first.ID != mercure.SubscriptionID(books1, first.Subscriber) {
		t.Fatalf("first subscription %+v", first)
	}

	byTopic := list("/.well-known/mercure/subscriptions/" + url.QueryEscape(books1))
	if len(byTopic.Subscriptions) != 2 || byTopic.Subscriptions[0].Topic != books1 || byTopic.Subscriptions[1].Topic != books1 {
		t.Fatalf("subscriptions of %s: %+v", books1, byTopic.Subscriptions)
	}
	tmpl := list("/.well-known/mercure/subscriptions/" + url.QueryEscape("https://example.com/books/{id}"))
	if len(tmpl.Subscriptions) != 1 {
		t.Fatalf("subscriptions of the template: %+v", tmpl.Subscriptions)
	}

	one := first.ID
	resp, body := get(one, api, "")
	var s mercure.Subscription
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &s) != nil || s.Context != "https://mercure.rocks/" || s.ID != one || s.LastEventID == "" || !s.Active {
		t.Fatalf("GET %s: %d %s", one, resp.StatusCode, body)
	}

	// ETag: unchanged while nothing is published.
	etag := resp.Header.Get("ETag")
	if resp, _ := get(one, api, etag); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match with the current ETag: %d", resp.StatusCode)
	}

	// Following the changes from lastEventID: the next subscriber's event
	// arrives, and nothing from before.
	w := subscribe(t, srv.URL, sub{topics: []string{subscriptionsTemplate}, tok: api, how: "header", lastID: list("/.well-known/mercure/subscriptions").LastEventID})
	subscribe(t, srv.URL, sub{topics: []string{"late"}})
	seen := map[string]bool{}
	for len(seen) < 2 {
		// The watcher's own subscription, then the late one.
		ev := decodeSubscription(t, w.Next(t).Data)
		if !ev.Active {
			t.Fatalf("unexpected event %+v", ev)
		}
		seen[ev.Topic] = true
	}
	if !seen["late"] || !seen[subscriptionsTemplate] {
		t.Fatalf("events after lastEventID: %v", seen)
	}

	for _, tc := range []struct {
		name, path, tok string
		status          int
	}{
		{"no token", "/.well-known/mercure/subscriptions", "", 401},
		{"claim does not select the URL", "/.well-known/mercure/subscriptions", token(t, subKey, auth.MercureClaim{Subscribe: []string{"https://example.com/{x}"}}), 403},
		{"exact claim for another topic", "/.well-known/mercure/subscriptions/" + url.QueryEscape(books1), token(t, subKey, auth.MercureClaim{Subscribe: []string{"/.well-known/mercure/subscriptions/x"}}), 403},
		{"unknown subscriber", "/.well-known/mercure/subscriptions/" + url.QueryEscape(books1) + "/urn%3Auuid%3Anobody", api, 404},
		{"too deep", "/.well-known/mercure/subscriptions/a/b/c", api, 404},
		{"empty subscriber segment", "/.well-known/mercure/subscriptions/a/", api, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(tc.path, tc.tok, "")
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d %s, want %d", resp.StatusCode, body, tc.status)
			}
			errorOf(t, body)
		})
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/.well-known/mercure/subscriptions", nil)
	if resp, _ := do(t, req); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST on the API: %d", resp.StatusCode)
	}
}

// Without --mercure-subscriptions there are neither events nor API.
func TestSubscriptionsOff(t *testing.T) {
	srv := startHub(t, func(c *config.Server) { c.Mercure.Subscriptions = false })
	all := token(t, subKey, auth.MercureClaim{Subscribe: []string{"*"}})
	w := subscribe(t, srv.URL, sub{topics: []string{"*"}, tok: all, how: "header"})
	subscribe(t, srv.URL, sub{topics: []string{"a"}})
	publish(t, srv.URL, form("topic", "marker", "data", "end"))
	if got := w.UntilData(t, "end"); len(got) != 0 {
		t.Fatalf("events with subscriptions off: %+v", got)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/.well-known/mercure/subscriptions", nil)
	req.Header.Set("Authorization", "Bearer "+all)
	if resp, body := do(t, req); resp.StatusCode != http.StatusNotFound || !strings.Contains(errorOf(t, body), "--mercure-subscriptions") {
		t.Fatalf("API with subscriptions off: %d %s", resp.StatusCode, body)
	}
}
