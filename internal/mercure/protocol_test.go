package mercure_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/mercure"
	"github.com/heraldpush/herald/internal/testkit"
)

// The current protocol's subscriptions: match (exact topics, "*"),
// match_urlpattern (URL patterns, absolute and relative), the spellings of
// an earlier draft, mixed with 0.x's topic, over real HTTP.
func TestMatchParameters(t *testing.T) {
	srv := startHub(t, nil)
	params := func(kv ...string) sub { return sub{params: form(kv...)} }
	exact := subscribe(t, srv.URL, params("match", books1, "match", "marker"))
	pattern := subscribe(t, srv.URL, params("match_urlpattern", "https://example.com/books/:id", "match", "marker"))
	star := subscribe(t, srv.URL, params("match", "*"))
	mixed := subscribe(t, srv.URL, sub{topics: []string{"https://example.com/movies/{id}"}, params: form("match_urlpattern", "https://example.com/music/:id", "match_exact", "marker")})
	draft := subscribe(t, srv.URL, params("matchURLPattern", "https://example.com/books/:id", "matchExact", "marker"))
	relative := subscribe(t, srv.URL, params("match_urlpattern", "/rel/:id", "match", "marker"))
	digits := subscribe(t, srv.URL, params("match_urlpattern", "https://example.com/books/:id(\\d+)", "match", "marker"))

	publish(t, srv.URL, form("topic", books1, "data", "b1"))
	publish(t, srv.URL, form("topic", books2, "data", "b2"))
	publish(t, srv.URL, form("topic", "https://example.com/books/x", "data", "bx"))
	publish(t, srv.URL, form("topic", "https://example.com/books/1/reviews", "data", "r1"))
	publish(t, srv.URL, form("topic", "https://example.com/movies/7", "data", "m7"))
	publish(t, srv.URL, form("topic", "https://example.com/music/3", "data", "mu3"))
	publish(t, srv.URL, form("topic", "/rel/1", "data", "rel"))
	publish(t, srv.URL, form("topic", "https://example.com/rel/1", "data", "relabs"))
	publish(t, srv.URL, form("topic", "https://example.com/canon/9", "topic", "https://example.com/books/9", "data", "alt"))
	publish(t, srv.URL, form("topic", books1, "data", "private", "private", "on"))
	publish(t, srv.URL, form("topic", "marker", "data", "end"))

	for name, tc := range map[string]struct {
		s    *testkit.Stream
		want string
	}{
		"match, exact":          {exact, "b1"},
		"match_urlpattern":      {pattern, "b1 b2 bx alt"},
		"match *":               {star, "b1 b2 bx r1 m7 mu3 rel relabs alt"},
		"topic and match mixed": {mixed, "m7 mu3"},
		"draft spellings":       {draft, "b1 b2 bx alt"},
		"relative URL pattern":  {relative, "rel"},
		"regular expression":    {digits, "b1 b2 alt"},
	} {
		if got := datas(tc.s.UntilData(t, "end")); got != tc.want {
			t.Errorf("%s: got %q, want %q", name, got, tc.want)
		}
	}
}

// Access tokens exactly as the Mercure documents give them: a publisher
// that may publish anywhere (the shape issue 19 reports refused), a
// narrower one, subscribers whose authorization details open private
// updates, in the header, the access_token parameter and the
// __Secure-mercure_access_token cookie; refusals carry RFC 6750's
// challenge.
func TestAccessTokens(t *testing.T) {
	srv := startHub(t, nil)
	anywhere := accessToken(t, pubKey, `{"exp":EXP,"authorization_details":[{"type":"https://mercure.rocks/authorization-detail","actions":["publish"],"topics":[{"match":"*"}]}]}`)
	books := accessToken(t, pubKey, `{
  "aud": "https://hub.example.com/.well-known/mercure",
  "exp": EXP,
  "sub": "urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6",
  "authorization_details": [
    {"type": "mercure", "actions": ["publish"], "topics": [{"match": "https://example.com/books/:id", "match_type": "urlpattern"}]}
  ]
}`)
	pub := func(tok string, f url.Values) *http.Response {
		t.Helper()
		resp, body := post(t, srv.URL, tok, f)
		if resp.StatusCode != 200 {
			t.Logf("publish %v: %d %s", f, resp.StatusCode, body)
		}
		return resp
	}
	if resp := pub(anywhere, form("topic", "https://example.com/anything", "data", "x")); resp.StatusCode != 200 {
		t.Fatal("the reference hub's documented publisher token was refused")
	}
	if resp := pub(books, form("topic", books1, "data", "x")); resp.StatusCode != 200 {
		t.Fatal("a URL pattern publisher token was refused on a topic it covers")
	}
	for _, f := range []url.Values{
		form("topic", "https://example.com/users/1"),
		form("topic", books1, "topic", "https://example.com/users/1"), // an alternate it does not cover
	} {
		resp := pub(books, f)
		if resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Fatalf("publish %v beyond the token: %d, WWW-Authenticate %q", f, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	resp, _ := post(t, srv.URL, "", form("topic", books1))
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Bearer realm="herald"` {
		t.Fatalf("publish without a token: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	reader := accessToken(t, subKey, `{"exp": EXP, "authorization_details": [
    {"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "https://example.com/books/:id", "match_type": "urlpattern"}]}
  ]}`)
	other := accessToken(t, subKey, `{"exp": EXP, "authorization_details": [
    {"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "https://example.com/books/2", "match_type": "exact"}]}
  ]}`)
	route := form("match_urlpattern", "https://example.com/books/:id", "match", "marker")
	streams := map[string]*testkit.Stream{
		"header":       subscribe(t, srv.URL, sub{params: route, tok: reader, how: "header"}),
		"access_token": subscribe(t, srv.URL, sub{params: route, tok: reader, how: "access_token"}),
		"cookie":       subscribe(t, srv.URL, sub{params: route, tok: reader, how: "cookie", cookie: "__Secure-mercure_access_token"}),
		"other":        subscribe(t, srv.URL, sub{params: route, tok: other, how: "header"}),
		"anonymous":    subscribe(t, srv.URL, sub{params: route}),
	}
	publish(t, srv.URL, form("topic", books1, "data", "p1", "private", "on"))
	publish(t, srv.URL, form("topic", books2, "data", "p2", "private", "on"))
	publish(t, srv.URL, form("topic", books1, "data", "pub"))
	publish(t, srv.URL, form("topic", "marker", "data", "end"))
	for name, want := range map[string]string{"header": "p1 p2 pub", "access_token": "p1 p2 pub", "cookie": "p1 p2 pub", "other": "p2 pub", "anonymous": "pub"} {
		if got := datas(streams[name].UntilData(t, "end")); got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}

	// Authorization details in a token that is not an access token.
	notAT := rawToken(t, subKey, `{"alg":"HS256","typ":"JWT"}`, `{"exp": EXP, "authorization_details": [{"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "*"}]}]}`)
	_, resp, body := open(t, srv.URL, sub{params: route, tok: notAT, how: "header"})
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) || !strings.Contains(errorOf(t, body), "at+jwt") {
		t.Fatalf("details in a typ JWT token: %d %s, WWW-Authenticate %q", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
	}
}

// A publisher may reuse an id, as with the reference hub; resuming from
// it resumes after its latest update.
func TestReusedID(t *testing.T) {
	srv := startHub(t, nil)
	live := subscribe(t, srv.URL, sub{params: form("match", "r", "match", "marker")})
	if id := publish(t, srv.URL, form("topic", "r", "id", "again", "data", "1")); id != "again" {
		t.Fatalf("first publish answered %q", id)
	}
	publish(t, srv.URL, form("topic", "r", "data", "2"))
	if id := publish(t, srv.URL, form("topic", "r", "id", "again", "data", "3")); id != "again" {
		t.Fatalf("the reuse answered %q", id)
	}
	publish(t, srv.URL, form("topic", "r", "data", "4"))
	publish(t, srv.URL, form("topic", "marker", "data", "end"))
	var ids []string
	for _, ev := range live.UntilData(t, "end") {
		ids = append(ids, ev.ID+"="+ev.Data)
	}
	if got := strings.Join(ids, " "); !strings.HasPrefix(got, "again=1 ") || !strings.Contains(got, " again=3 ") {
		t.Fatalf("live events %q: both updates carry the reused id", got)
	}
	resumed := subscribe(t, srv.URL, sub{params: form("match", "r", "match", "marker"), lastID: "again"})
	if got := datas(resumed.UntilData(t, "end")); got != "4" {
		t.Fatalf("resumed from the reused id: %q, want 4 (after its latest update)", got)
	}
	if h := resumed.Resp.Header.Get("Mercure-Last-Event-ID"); h != "again" {
		t.Fatalf("Mercure-Last-Event-ID %q, want again", h)
	}
}

// Resuming with the current protocol's names: the last_event_id query
// parameter (the Last-Event-ID header wins over it) and the
// Mercure-Last-Event-ID response header, beside 0.x's.
func TestResumeCurrentProtocol(t *testing.T) {
	srv := startHub(t, nil)
	first := publish(t, srv.URL, form("topic", "q", "data", "1"))
	second := publish(t, srv.URL, form("topic", "q", "id", "two", "data", "2"))
	publish(t, srv.URL, form("topic", "q", "data", "3"))
	publish(t, srv.URL, form("topic", "marker", "data", "end"))
	route := form("match", "q", "match", "marker")
	for _, tc := range []struct {
		name       string
		s          sub
		want, echo string
	}{
		{"last_event_id", sub{params: route, snakeID: first}, "2 3", first},
		{"last_event_id, a publisher's id", sub{params: route, snakeID: second}, "3", second},
		{"the header wins", sub{params: route, snakeID: first, lastID: second}, "3", second},
		{"last_event_id wins over lastEventID", sub{params: route, snakeID: second, queryID: first}, "3", second},
		{"earliest", sub{params: route, snakeID: "earliest"}, "1 2 3", "earliest"},
		{"unknown", sub{params: route, snakeID: "nope"}, "1 2 3", "earliest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := subscribe(t, srv.URL, tc.s)
			var got []string
			for _, ev := range s.UntilData(t, "end") {
				if ev.Data != "" && ev.Type != "herald.reset" {
					got = append(got, ev.Data)
				}
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			for _, h := range []string{"Mercure-Last-Event-ID", "Last-Event-ID"} {
				if v := s.Resp.Header.Get(h); v != tc.echo {
					t.Errorf("%s %q, want %q", h, v, tc.echo)
				}
			}
		})
	}
}

// Subscription events and the subscriptions API for the current
// protocol's subscriptions: topics and ids
// /.well-known/mercure/subscriptions/{match_type}/{match}/{subscriber},
// documents with match_type and match, and the payload of the first
// subscribe detail that selects the subscription's matcher.
func TestSubscriptionsCurrentProtocol(t *testing.T) {
	srv := startHub(t, nil)
	// The reference hub demo's pattern for every subscription URL.
	const all = "/.well-known/mercure/subscriptions{/:matchType}?{/:match}?{/:subscriber}?"
	watcherTok := accessToken(t, subKey, `{"exp": EXP, "authorization_details": [{"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "`+all+`", "match_type": "urlpattern"}]}]}`)
	w := subscribe(t, srv.URL, sub{params: form("match_urlpattern", all), tok: watcherTok, how: "header"})
	aliceTok := accessToken(t, subKey, `{"exp": EXP, "authorization_details": [
  {"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "https://example.com/books/:id", "match_type": "urlpattern"}], "payload": {"p": "books"}},
  {"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "*"}], "payload": {"p": "default"}}
]}`)
	const pattern = "https://example.com/books/:id"
	a := subscribe(t, srv.URL, sub{params: form("match_urlpattern", pattern, "match", "news"), tok: aliceTok, how: "header"})

	var subscriber string
	for i, want := range []struct{ typ, match, payload string }{{"exact", "news", `{"p":"default"}`}, {"urlpattern", pattern, `{"p":"books"}`}} {
		ev := w.Next(t)
		s := decodeSubscription(t, ev.Data)
		if i == 0 {
			subscriber = s.Subscriber
		}
		if s.MatchType != want.typ || s.Match != want.match || s.Topic != "" || !s.Active || string(s.Payload) != want.payload ||
			s.ID != mercure.MatchSubscriptionID(want.typ, want.match, subscriber) || s.Type != "Subscription" {
			t.Fatalf("event %d: %s", i, ev.Data)
		}
	}
	if want := "/.well-known/mercure/subscriptions/urlpattern/https%3A%2F%2Fexample.com%2Fbooks%2F%3Aid/" + url.QueryEscape(subscriber); mercure.MatchSubscriptionID("urlpattern", pattern, subscriber) != want {
		t.Fatalf("subscription id %q, want %q", mercure.MatchSubscriptionID("urlpattern", pattern, subscriber), want)
	}

	get := func(path string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+watcherTok)
		return do(t, req)
	}
	id := mercure.MatchSubscriptionID("urlpattern", pattern, subscriber)
	collection := id[:strings.LastIndex(id, "/")]
	resp, body := get(collection)
	var c map[string]any
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &c) != nil {
		t.Fatalf("GET %s: %d %s", collection, resp.StatusCode, body)
	}
	subs, _ := c["subscriptions"].([]any)
	if len(subs) != 1 || c["last_event_id"] == nil || c["last_event_id"] != c["lastEventID"] || c["id"] != collection {
		t.Fatalf("GET %s: %s", collection, body)
	}
	resp, body = get(id)
	s := decodeSubscription(t, body)
	if resp.StatusCode != 200 || s.Match != pattern || s.MatchType != "urlpattern" || s.LastEventIDSnake == "" || s.LastEventIDSnake != s.LastEventID || string(s.Payload) != `{"p":"books"}` {
		t.Fatalf("GET %s: %d %s", id, resp.StatusCode, body)
	}
	if resp, body := get(mercure.MatchSubscriptionID("exact", "news", "urn:uuid:nobody")); resp.StatusCode != 404 {
		t.Fatalf("an unknown subscriber: %d %s", resp.StatusCode, body)
	}
	if resp, body := get(mercure.SubscriptionsPath + "/exact/news/a/b"); resp.StatusCode != 404 {
		t.Fatalf("too many segments: %d %s", resp.StatusCode, body)
	}
	// A token that does not select the path is refused, with the challenge.
	narrow := accessToken(t, subKey, `{"exp": EXP, "authorization_details": [{"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "`+pattern+`", "match_type": "urlpattern"}]}]}`)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+collection, nil)
	req.Header.Set("Authorization", "Bearer "+narrow)
	if resp, body := do(t, req); resp.StatusCode != 403 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Fatalf("the subscriptions API with a token that does not select it: %d %s", resp.StatusCode, body)
	}

	a.Close()
	for range 2 {
		if s := decodeSubscription(t, w.Next(t).Data); s.Active || s.Subscriber != subscriber {
			t.Fatalf("after the subscriber left: %+v", s)
		}
	}
}
