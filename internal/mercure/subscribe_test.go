package mercure_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
)

const (
	books1 = "https://example.com/books/1"
	books2 = "https://example.com/books/2"
)

// Exact topics, "*", URI templates, several selectors and alternate topics,
// over real HTTP.
func TestTopicSelectors(t *testing.T) {
	srv := startHub(t, nil)
	exact := subscribe(t, srv.URL, sub{topics: []string{books1, "marker"}})
	tmpl := subscribe(t, srv.URL, sub{topics: []string{"https://example.com/books/{id}", "marker"}})
	star := subscribe(t, srv.URL, sub{topics: []string{"*"}})
	multi := subscribe(t, srv.URL, sub{topics: []string{"https://example.com/movies/{id}", books2, "marker"}})
	alt := subscribe(t, srv.URL, sub{topics: []string{"https://example.com/alt/1", "marker"}})
	reserved := subscribe(t, srv.URL, sub{topics: []string{"/.well-known/mercure", "marker"}})

	publish(t, srv.URL, form("topic", books1, "data", "b1"))
	publish(t, srv.URL, form("topic", books2, "data", "b2"))
	publish(t, srv.URL, form("topic", "https://example.com/movies/7", "data", "m7"))
	publish(t, srv.URL, form("topic", "https://example.com/books/1/reviews", "data", "r1"))
	publish(t, srv.URL, form("topic", "https://example.com/canon/1", "topic", "https://example.com/alt/1", "data", "alt"))
	publish(t, srv.URL, form("topic", books1, "data", "private", "private", "on"))
	publish(t, srv.URL, form("topic", "marker", "data", "end"))

	for name, tc := range map[string]struct {
		s    *testkit.Stream
		want string
	}{
		"exact":               {exact, "b1"},
		"template":            {tmpl, "b1 b2"},
		"star":                {star, "b1 b2 m7 r1 alt"},
		"several selectors":   {multi, "b2 m7"},
		"alternate topic":     {alt, "alt"},
		"the hub's own topic": {reserved, ""},
	} {
		if got := datas(tc.s.UntilData(t, "end")); got != tc.want {
			t.Errorf("%s: got %q, want %q", name, got, tc.want)
		}
	}
}

// Events carry the publisher's id (else Herald's), its type as the SSE
// event field, its retry, and data split into lines.
func TestEventFields(t *testing.T) {
	srv := startHub(t, nil)
	s := testkit.Subscribe(t, nil, srv.URL+hubPath+"?topic=a", nil)
	if ct := s.Resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q", ct)
	}
	s.NextID(t) // subscribed
	publish(t, srv.URL, form("topic", "a", "id", "urn:uuid:e1", "type", "update", "retry", "1500", "data", "line1\nline2"))
	id2 := publish(t, srv.URL, form("topic", "a", "data", "plain"))
	for _, want := range []string{
		"id: urn:uuid:e1\nevent: update\nretry: 1500\ndata: line1\ndata: line2\n",
		"id: " + id2 + "\ndata: plain\n",
	} {
		if b, _ := s.NextBlock(t); b.Raw != want {
			t.Fatalf("block %q, want %q", b.Raw, want)
		}
	}
}

// Private updates reach only subscribers whose token's mercure.subscribe
// claim selects one of the update's topics (canonical or alternate), in
// whatever way the token comes: header, cookie or query parameter.
func TestPrivateUpdates(t *testing.T) {
	srv := startHub(t, func(c *config.Server) { c.Mercure.CookieName = "hubToken" })
	claim := auth.MercureClaim{Subscribe: []string{"https://example.com/users/1/inbox", "https://example.com/groups/{g}"}}
	tok := token(t, subKey, claim)
	topics := []string{"https://example.com/users/{id}/inbox", "marker"}
	subs := map[string]*testkit.Stream{
		"header":           subscribe(t, srv.URL, sub{topics: topics, tok: tok, how: "header"}),
		"cookie":           subscribe(t, srv.URL, sub{topics: topics, tok: tok, how: "cookie", cookie: "hubToken"}),
		"herald cookie":    subscribe(t, srv.URL, sub{topics: topics, tok: tok, how: "cookie", cookie: auth.CookieName}),
		"query":            subscribe(t, srv.URL, sub{topics: topics, tok: tok, how: "query"}),
		"anonymous":        subscribe(t, srv.URL, sub{topics: topics}),
		"claim on nothing": subscribe(t, srv.URL, sub{topics: topics, tok: token(t, subKey, auth.MercureClaim{}), how: "header"}),
	}
	publish(t, srv.URL, form("topic", "https://example.com/users/1/inbox", "private", "on", "data", "p1"))
	publish(t, srv.URL, form("topic", "https://example.com/users/2/inbox", "private", "on", "data", "p2"))
	publish(t, srv.URL, form("topic", "https://example.com/users/2/inbox", "data", "public"))
	publish(t, srv.URL, form("topic", "https://example.com/users/3/inbox", "topic", "https://example.com/groups/x", "private", "on", "data", "p3"))
	publish(t, srv.URL, form("topic", "https://example.com/groups/x", "private", "on", "data", "not-subscribed"))
	publish(t, srv.URL, form("topic", "marker", "data", "end"))
	for name, s := range subs {
		want := "p1 public p3"
		if name == "anonymous" || name == "claim on nothing" {
			want = "public"
		}
		if got := datas(s.UntilData(t, "end")); got != want {
			t.Errorf("%s: got %q, want %q", name, got, want)
		}
	}

	// History is filtered the same way.
	for name, tc := range map[string]struct{ s sub }{
		"p1 public p3": {sub{topics: topics, tok: tok, how: "header", lastID: "earliest"}},
		"public":       {sub{topics: topics, lastID: "earliest"}},
	} {
		if got := datas(subscribe(t, srv.URL, tc.s).UntilData(t, "end")); got != name {
			t.Errorf("replay: got %q, want %q", got, name)
		}
	}
}

// The token sources' precedence is the protocol's: header, then query
// parameter, then cookie; a token that does not verify is refused.
func TestSubscriberTokens(t *testing.T) {
	srv := startHub(t, func(c *config.Server) { c.Auth.AllowAnonymous = false })
	good := token(t, subKey, auth.MercureClaim{Subscribe: []string{"*"}})
	expired := token(t, subKey, auth.MercureClaim{Subscribe: []string{"*"}}, func(c *jwt.RegisteredClaims) {
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	})
	open1 := func(q url.Values, header, cookie string) (int, string) {
		q.Set("topic", "a")
		req, _ := http.NewRequest(http.MethodGet, srv.URL+hubPath+"?"+q.Encode(), nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "mercureAuthorization", Value: cookie})
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == 200 {
			return 200, ""
		}
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, errorOf(t, string(b))
	}
	for _, tc := range []struct {
		name           string
		query          url.Values
		header, cookie string
		status         int
		want           string
	}{
		{"no token, anonymous not allowed", url.Values{}, "", "", 401, "needs a token"},
		{"header", url.Values{}, "Bearer " + good, "", 200, ""},
		{"cookie", url.Values{}, "", good, 200, ""},
		{"query", url.Values{"authorization": {good}}, "", "", 200, ""},
		{"query wins over a bad cookie", url.Values{"authorization": {good}}, "", "bad", 200, ""},
		{"header wins over a bad query", url.Values{"authorization": {"bad"}}, "Bearer " + good, "", 200, ""},
		{"cookie loses to a bad query", url.Values{"authorization": {"bad"}}, "", good, 401, "invalid token"},
		{"publisher's key", url.Values{}, "Bearer " + token(t, pubKey, auth.MercureClaim{Subscribe: []string{"*"}}), "", 401, "invalid token"},
		{"expired", url.Values{}, "Bearer " + expired, "", 401, "expired"},
		{"not bearer", url.Values{}, "Basic Zm9vOmJhcg==", "", 401, "Bearer"},
		{"two query tokens", url.Values{"authorization": {good, good}}, "", "", 401, "more than one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, msg := open1(tc.query, tc.header, tc.cookie)
			if status != tc.status || !strings.Contains(msg, tc.want) {
				t.Fatalf("got %d %q, want %d with %q", status, msg, tc.status, tc.want)
			}
		})
	}
}

// A subscriber's stream ends when its token expires.
func TestStreamEndsAtTokenExpiry(t *testing.T) {
	srv := startHub(t, nil)
	tok := token(t, subKey, auth.MercureClaim{Subscribe: []string{"*"}}, func(c *jwt.RegisteredClaims) {
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(1500 * time.Millisecond))
	})
	s := subscribe(t, srv.URL, sub{topics: []string{"a"}, tok: tok, how: "header"})
	if _, err := s.End(t); err != nil {
		t.Fatalf("the stream ended at the token's expiry with %v, want a clean end", err)
	}
}

// Resuming: from a publisher's id or Herald's, by header or query
// parameter (the header wins), from "earliest", from an unknown id; the
// Last-Event-ID response header says where the stream starts from.
func TestResume(t *testing.T) {
	srv := startHub(t, nil)
	topics := []string{"https://example.com/r/{n}", "marker"}
	publish(t, srv.URL, form("topic", "https://example.com/r/1", "id", "u1", "data", "d1"))
	id2 := publish(t, srv.URL, form("topic", "https://example.com/r/2", "data", "d2"))
	publish(t, srv.URL, form("topic", "https://example.com/other/3", "id", "o3", "data", "d3"))
	publish(t, srv.URL, form("topic", "https://example.com/r/4", "id", "u4", "data", "d4"))
	publish(t, srv.URL, form("topic", "marker", "data", "end"))

	for _, tc := range []struct {
		name         string
		s            sub
		want, header string
		reset        string
	}{
		{"from a publisher's id", sub{lastID: "u1"}, "d2 d4", "u1", ""},
		{"from Herald's id", sub{lastID: id2}, "d4", id2, ""},
		{"from the id of an update the subscriber does not follow", sub{lastID: "o3"}, "d4", "o3", ""},
		{"lastEventID query parameter", sub{queryID: "u1"}, "d2 d4", "u1", ""},
		{"the header wins over the query parameter", sub{lastID: id2, queryID: "u1"}, "d4", id2, ""},
		{"earliest", sub{lastID: "earliest"}, "d1 d2 d4", "earliest", ""},
		{"unknown id", sub{lastID: "no-such-id"}, "d1 d2 d4", "earliest", "invalid-id"},
		{"id of another epoch", sub{lastID: "otherepoch-3"}, "d1 d2 d4", "earliest", "epoch-changed"},
		{"no id: live only", sub{}, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.topics = topics
			st := subscribe(t, srv.URL, tc.s)
			if got := st.Resp.Header.Get("Last-Event-ID"); got != tc.header {
				t.Errorf("Last-Event-ID response header %q, want %q", got, tc.header)
			}
			if tc.s.lastID == "" && tc.s.queryID == "" {
				publish(t, srv.URL, form("topic", "marker", "data", "end"))
			}
			var resets []string
			var got []string
			for _, ev := range st.UntilData(t, "end") {
				if ev.Type == "herald.reset" {
					var r struct{ Reason string }
					json.Unmarshal([]byte(ev.Data), &r)
					resets = append(resets, r.Reason)
					continue
				}
				got = append(got, ev.Data)
			}
			if strings.Join(got, " ") != tc.want || strings.Join(resets, ",") != tc.reset {
				t.Fatalf("got %q with resets %q, want %q with %q", got, resets, tc.want, tc.reset)
			}
		})
	}
}

// An EventSource's reconnection sends the id of the last event it saw:
// whatever it is (a publisher's id, or Herald's), the subscriber gets every
// later update once, including those published while it was away.
func TestReconnectGetsWhatWasMissed(t *testing.T) {
	srv := startHub(t, nil)
	topics := []string{"https://example.com/feed/{n}", "marker"}
	s := subscribe(t, srv.URL, sub{topics: topics})
	publish(t, srv.URL, form("topic", "https://example.com/feed/1", "id", "f1", "data", "1"))
	publish(t, srv.URL, form("topic", "https://example.com/feed/2", "data", "2"))
	publish(t, srv.URL, form("topic", "marker", "data", "end1"))
	evs := s.UntilData(t, "end1")
	if datas(evs) != "1 2" {
		t.Fatalf("first connection got %q", datas(evs))
	}
	s.Close()
	last := evs[0].ID // the publisher's id
	publish(t, srv.URL, form("topic", "https://example.com/feed/3", "id", "f3", "data", "3"))
	publish(t, srv.URL, form("topic", "https://example.com/feed/4", "data", "4"))
	publish(t, srv.URL, form("topic", "marker", "data", "end2"))
	if got := datas(subscribe(t, srv.URL, sub{topics: topics, lastID: last}).UntilData(t, "end2")); got != "2 end1 3 4" {
		t.Fatalf("resumed from %q: got %q, want 2 end1 3 4", last, got)
	}
}

// Template subscriptions read their history from the hub topic, whose
// history is bounded per topic like any other: when it no longer reaches
// back to the client's id, the client is told (herald.reset) and gets what
// is left, never a silent gap.
func TestResumeBeyondHistory(t *testing.T) {
	// Subscriptions are on: their events have a topic of their own and
	// take no place in the updates' history.
	srv := startHub(t, func(c *config.Server) { c.History.MaxEvents = 3 })
	for _, id := range []string{"h1", "h2", "h3", "h4", "h5"} {
		publish(t, srv.URL, form("topic", "https://example.com/h/"+id, "id", id, "data", id))
	}
	s := subscribe(t, srv.URL, sub{topics: []string{"https://example.com/h/{id}"}, lastID: "h1"})
	if h := s.Resp.Header.Get("Last-Event-ID"); h != "earliest" {
		t.Errorf("Last-Event-ID response header %q, want earliest", h)
	}
	ev := s.Next(t)
	if ev.Type != "herald.reset" || !strings.Contains(ev.Data, "history-truncated") {
		t.Fatalf("first event %+v, want a herald.reset for history-truncated", ev)
	}
	var got []string
	for range 3 {
		got = append(got, s.Next(t).Data)
	}
	if strings.Join(got, " ") != "h3 h4 h5" {
		t.Fatalf("after the reset: %q, want h3 h4 h5", got)
	}
}

func TestSubscribeBadRequests(t *testing.T) {
	srv := startHub(t, nil)
	many := url.Values{}
	for i := range 64 {
		many.Add("topic", "t"+strings.Repeat("x", i))
	}
	for _, tc := range []struct {
		name, method, path string
		status             int
		want               string
	}{
		{"no topic", "GET", hubPath, 400, `missing topic selector`},
		{"only an unrelated parameter", "GET", hubPath + "?foo=bar", 400, `missing topic selector`},
		{"unknown matcher type", "GET", hubPath + "?match_regexp=.*", 400, `unknown topic matcher parameter "match_regexp"`},
		{"matcher parameter in the wrong case", "GET", hubPath + "?Match=a", 400, `unknown topic matcher parameter "Match"`},
		{"the whole match prefix is reserved", "GET", hubPath + "?topic=a&matches=1", 400, `unknown topic matcher parameter "matches"`},
		{"match_URLPattern", "GET", hubPath + "?match_URLPattern=/a", 400, "unknown topic matcher parameter"},
		{"empty match", "GET", hubPath + "?match=", 400, "empty"},
		{"control character in match", "GET", hubPath + "?match=a%0Ab", 400, "control character"},
		{"format character in match", "GET", hubPath + "?match=a%E2%80%8Bb", 400, "format character"},
		{"exact match too long for a topic", "GET", hubPath + "?match=" + strings.Repeat("x", 300), 400, "longer than"},
		{"malformed URL pattern", "GET", hubPath + "?match_urlpattern=https%3A%2F%2Fexample.com%2F(", 400, "not a well-formed URL pattern"},
		{"costly URL pattern", "GET", hubPath + "?match_urlpattern=%2F(a%7B1%2C1000%7D)", 400, "bounded repetitions"},
		{"too many selectors, all kinds counted", "GET", hubPath + "?" + many.Encode() + "&match=z", 400, "too many"},
		{"empty topic", "GET", hubPath + "?topic=", 400, "empty"},
		{"control character", "GET", hubPath + "?topic=a%0Ab", 400, "control character"},
		{"invalid UTF-8", "GET", hubPath + "?topic=%FF", 400, "UTF-8"},
		{"selector too long", "GET", hubPath + "?topic=" + strings.Repeat("x", 2000), 400, "longer than"},
		{"too many selectors", "GET", hubPath + "?" + many.Encode() + "&topic=last", 400, "too many"},
		{"malformed query", "GET", hubPath + "?topic=%zz", 400, "malformed"},
		{"wrong method", "DELETE", hubPath + "?topic=a", 405, "method not allowed"},
		{"unknown path", "GET", hubPath + "/nothing", 404, "no such endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			resp, body := do(t, req)
			if resp.StatusCode != tc.status || !strings.Contains(errorOf(t, body), tc.want) {
				t.Fatalf("got %d %s, want %d with %q", resp.StatusCode, body, tc.status, tc.want)
			}
		})
	}
}

// An update published through Herald's own API to a topic a Mercure
// subscriber follows exactly reaches it too (with Herald's id), and a
// Mercure update reaches Herald's /events subscribers of its topics.
func TestHeraldAndMercureShareTopics(t *testing.T) {
	srv := startHub(t, nil)
	s := subscribe(t, srv.URL, sub{topics: []string{"shared"}})
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/publish", strings.NewReader(`{"topic":"shared","data":"from herald"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+publisher(t))
	if resp, body := do(t, req); resp.StatusCode != 200 {
		t.Fatalf("/publish: %d %s", resp.StatusCode, body)
	}
	ev := s.Next(t)
	if _, err := pubsub.ParsePosition(ev.ID); ev.Data != "from herald" || err != nil {
		t.Fatalf("Mercure subscriber got %+v, want Herald's update with Herald's id", ev)
	}

	h := testkit.Subscribe(t, nil, srv.URL+"/events?topic=shared", nil)
	publish(t, srv.URL, form("topic", "shared", "data", "from mercure"))
	// An update with a publisher's id and retry keeps them as metadata;
	// Herald's subscribers get the data alone.
	publish(t, srv.URL, form("topic", "shared", "data", "with id", "id", "urn:uuid:1", "retry", "900"))
	if got := h.Data(t, 2); !slices.Equal(got, []string{"from mercure", "with id"}) {
		t.Fatalf("Herald subscriber got %q, want the data alone", got)
	}
}
