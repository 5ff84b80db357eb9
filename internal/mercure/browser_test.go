package mercure_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/browsertest"
	"github.com/heraldpush/herald/internal/config"
)

// page is an application page as a Mercure app serves it: it sets the
// subscriber's token in the mercureAuthorization cookie (HttpOnly, for the
// hub's path) and advertises the hub with a Link header; its script
// subscribes with a native EventSource, once with credentials (the
// cookie) and once without (anonymous).
const page = `<!doctype html>
<title>mercure</title>
<script>
window.logs = {auth: [], anon: []};
window.opened = {auth: 0, anon: 0};
const u = new URL(%q);
for (const [k, v] of %s) u.searchParams.append(k, v);
function follow(name, es) {
	const push = e => window.logs[name].push({type: e.type, id: e.lastEventId, data: e.data});
	es.onmessage = push;
	es.addEventListener("update", push);
	es.onopen = () => window.opened[name]++;
}
follow("auth", new EventSource(u, {withCredentials: true}));
follow("anon", new EventSource(u));
</script>`

type entry struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data string `json:"data"`
}

// A real Chromium: a page of another origin subscribes to
// /.well-known/mercure with EventSource, its token in the cookie the
// application set; it gets public updates and the private ones its token
// allows, with the publishers' ids and types; cut off, it reconnects with
// the id it last saw and gets exactly what it missed. An EventSource
// without credentials gets public updates only. Once as a 0.x application
// does it (topic parameters with URI templates, the mercure claim in the
// mercureAuthorization cookie), once as the current protocol has it
// (match_urlpattern and match, an access token with authorization_details
// in the __Secure-mercure_access_token cookie).
func TestBrowserEventSourceWithCookie(t *testing.T) {
	for _, v := range []struct {
		name, params, cookie string
		secure               bool
		tok                  func(t *testing.T) string
	}{
		{"0.x", `[["topic", "https://example.com/books/{id}"], ["topic", "https://example.com/marker"]]`, "mercureAuthorization", false,
			func(t *testing.T) string {
				return token(t, subKey, auth.MercureClaim{Subscribe: []string{"https://example.com/books/1"}})
			}},
		{"current protocol", `[["match_urlpattern", "https://example.com/books/:id"], ["match", "https://example.com/marker"]]`, "__Secure-mercure_access_token", true,
			func(t *testing.T) string {
				return accessToken(t, subKey, `{"exp": EXP, "authorization_details": [{"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "https://example.com/books/1"}]}]}`)
			}},
	} {
		t.Run(v.name, func(t *testing.T) { browserEventSource(t, v.params, v.cookie, v.secure, v.tok(t)) })
	}
}

func browserEventSource(t *testing.T, params, cookie string, secure bool, tok string) {
	pageSrv := httptest.NewUnstartedServer(nil)
	pageSrv.Start()
	defer pageSrv.Close()
	origin := pageSrv.URL
	srv := startHub(t, func(c *config.Server) {
		c.HTTP.CORSOrigins = config.Strings{origin}
		c.Core.Retry = 200 * time.Millisecond
	})
	pageSrv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A __Secure- cookie must be Secure; Chromium takes one from a
		// loopback origin, which it counts as secure.
		http.SetCookie(w, &http.Cookie{Name: cookie, Value: tok, Path: hubPath, HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
		w.Header().Set("Link", `<`+srv.URL+hubPath+`>; rel="mercure"`)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, page, srv.URL+hubPath, params)
	})

	ctx := browsertest.New(t, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/")); err != nil {
		t.Fatal(err)
	}
	poll := func(what, expr string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			logs, _ := chromedp.Run(ctx, chromedp.Evaluate[map[string][]entry](`window.logs`))
			t.Fatalf("waiting for %s: %v (logs %+v)", what, err, logs)
		}
	}
	logs := func() map[string][]entry {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[map[string][]entry](`window.logs`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	poll("both EventSources open", `window.opened.auth === 1 && window.opened.anon === 1`)

	publish(t, srv.URL, form("topic", books1, "id", "urn:uuid:b1", "type", "update", "data", `{"title":"public"}`))
	publish(t, srv.URL, form("topic", books1, "id", "urn:uuid:b1-private", "private", "on", "data", "private for book 1"))
	publish(t, srv.URL, form("topic", books2, "private", "on", "data", "private for book 2"))
	id4 := publish(t, srv.URL, form("topic", books2, "data", "public book 2"))
	publish(t, srv.URL, form("topic", "https://example.com/movies/1", "data", "not subscribed"))
	publish(t, srv.URL, form("topic", "https://example.com/marker", "data", "end1"))
	poll("the marker on both", `[window.logs.auth, window.logs.anon].every(l => l.some(e => e.data === "end1"))`)

	public := []entry{{"update", "urn:uuid:b1", `{"title":"public"}`}, {"message", id4, "public book 2"}}
	got := logs()
	wantAuth := []entry{public[0], {"message", "urn:uuid:b1-private", "private for book 1"}, public[1]}
	if !same(got["auth"], wantAuth, "end1") {
		t.Fatalf("EventSource with the cookie got %+v\nwant %+v", got["auth"], wantAuth)
	}
	if !same(got["anon"], public, "end1") {
		t.Fatalf("EventSource without credentials got %+v\nwant %+v", got["anon"], public)
	}

	// Cut every stream: the EventSources reconnect by themselves, with the
	// last id they saw, and get exactly what was published meanwhile.
	srv.App.Hub().Disconnect("")
	publish(t, srv.URL, form("topic", books1, "id", "urn:uuid:b1-v2", "private", "on", "data", "while away"))
	publish(t, srv.URL, form("topic", books1, "data", "public while away"))
	publish(t, srv.URL, form("topic", "https://example.com/marker", "data", "end2"))
	poll("reconnections", `window.opened.auth >= 2 && window.opened.anon >= 2`)
	poll("the second marker on both", `[window.logs.auth, window.logs.anon].every(l => l.some(e => e.data === "end2"))`)
	got = logs()
	if d := datas2(got["auth"]); d != `{"title":"public"}|private for book 1|public book 2|end1|while away|public while away|end2` {
		t.Fatalf("EventSource with the cookie, across a reconnection: %s", d)
	}
	if d := datas2(got["anon"]); d != `{"title":"public"}|public book 2|end1|public while away|end2` {
		t.Fatalf("EventSource without credentials, across a reconnection: %s", d)
	}
}

// same compares logs with want followed by the marker.
func same(got, want []entry, marker string) bool {
	if len(got) != len(want)+1 || got[len(want)].Data != marker {
		return false
	}
	for i := range want {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func datas2(l []entry) string {
	var s []string
	for _, e := range l {
		s = append(s, e.Data)
	}
	return strings.Join(s, "|")
}
