package mercure_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/pubsub"
)

// The publish form as the protocol defines it (topic repeatable, data,
// private, id, type, retry), and every way to get it wrong.
func TestPublishForm(t *testing.T) {
	srv := startHub(t, func(c *config.Server) { c.Limits.MaxDataBytes = 1 << 10 })
	epoch := srv.App.Hub().Broker().Epoch()
	publish(t, srv.URL, form("topic", "x", "id", "taken"))

	long := func(n int) string { return strings.Repeat("x", n) }
	many := url.Values{"topic": nil}
	for i := range 65 {
		many.Add("topic", "t"+long(i))
	}
	for _, tc := range []struct {
		name   string
		form   url.Values
		ctype  string
		raw    string // body instead of form
		status int
		want   string // in the body: the id on 200, the error otherwise
	}{
		{name: "minimal", form: form("topic", "https://example.com/books/1", "data", "hello"), status: 200, want: epoch + "-"},
		{name: "no data", form: form("topic", "a"), status: 200, want: epoch + "-"},
		{name: "publisher's id is the answer", form: form("topic", "a", "id", "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"), status: 200, want: "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427"},
		{name: "alternates", form: form("topic", "a", "topic", "b", "topic", "a"), status: 200},
		{name: "private with any value", form: form("topic", "a", "private", ""), status: 200},
		{name: "type and retry", form: form("topic", "a", "type", "update", "retry", "1500"), status: 200},
		{name: "empty retry is no retry", form: form("topic", "a", "retry", ""), status: 200},
		{name: "unknown fields are ignored", form: form("topic", "a", "target", "legacy"), status: 200},
		{name: "content type with charset", form: form("topic", "a"), ctype: "application/x-www-form-urlencoded; charset=utf-8", status: 200},

		{name: "missing topic", form: form("data", "x"), status: 400, want: `missing "topic"`},
		{name: "JSON body", raw: `{"topic":"a"}`, ctype: "application/json", status: 415, want: "x-www-form-urlencoded"},
		{name: "no content type", raw: "topic=a", ctype: "-", status: 415, want: "Content-Type"},
		{name: "malformed form", raw: "topic=%zz", status: 400, want: "malformed"},
		{name: "data twice", form: form("topic", "a", "data", "1", "data", "2"), status: 400, want: `"data" given 2 times`},
		{name: "id twice", form: form("topic", "a", "id", "1", "id", "2"), status: 400, want: `"id" given 2 times`},
		{name: "empty topic", form: form("topic", ""), status: 400, want: "empty"},
		{name: "control character in topic", form: form("topic", "a\nb"), status: 400, want: "control character"},
		{name: "topic too long", form: form("topic", long(257)), status: 400, want: "longer than"},
		{name: "too many topics", form: many, status: 400, want: "too many topics"},
		{name: "reserved topic", form: form("topic", "/.well-known/mercure/subscriptions/a/b"), status: 403, want: "reserved"},
		{name: "reserved topic, absolute", form: form("topic", "https://evil.example/.well-known/mercure/subscriptions/a/b"), status: 403, want: "reserved"},
		{name: "reserved topic as an alternate", form: form("topic", "a", "topic", "/.well-known/mercure"), status: 403, want: "reserved"},
		{name: "CR in type", form: form("topic", "a", "type", "x\ry"), status: 400, want: "CR or LF"},
		{name: "Herald's reserved type", form: form("topic", "a", "type", "herald.reset"), status: 400, want: "reserved"},
		{name: "id starting with #", form: form("topic", "a", "id", "#1"), status: 400, want: `"#"`},
		{name: "id earliest", form: form("topic", "a", "id", "earliest"), status: 400, want: "reserved"},
		{name: "LF in id", form: form("topic", "a", "id", "a\nb"), status: 400, want: "CR, LF or NUL"},
		{name: "NUL in id", form: form("topic", "a", "id", "a\x00b"), status: 400, want: "CR, LF or NUL"},
		{name: "empty id", form: form("topic", "a", "id", ""), status: 400, want: "empty"},
		{name: "id too long", form: form("topic", "a", "id", long(257)), status: 400, want: "longer than"},
		{name: "id in Herald's form", form: form("topic", "a", "id", epoch+"-99"), status: 400, want: "Herald's own"},
		{name: "id used before: accepted, as by the reference hub", form: form("topic", "a", "id", "taken"), status: 200, want: "taken"},
		{name: "topic *", form: form("topic", "*"), status: 400, want: `topic "*" is reserved`},
		{name: "format character in topic", form: form("topic", "a\u202eb"), status: 400, want: "format character"},
		{name: "format character in id", form: form("topic", "a", "id", "a\u200bb"), status: 400, want: "format character"},
		{name: "control character in type", form: form("topic", "a", "type", "a	b"), status: 400, want: "control character"},
		{name: "reserved topic, percent-encoded", form: form("topic", "https://hub.example/.well-known/%6Dercure/subscriptions/a"), status: 403, want: "reserved"},
		{name: "reserved topic, dot segments", form: form("topic", "https://hub.example/a/../.well-known/mercure"), status: 403, want: "reserved"},
		{name: "reserved topic, relative with dot segments", form: form("topic", "/.well-known/./mercure/x"), status: 403, want: "reserved"},
		{name: "retry not digits", form: form("topic", "a", "retry", "soon"), status: 400, want: "digits"},
		{name: "negative retry", form: form("topic", "a", "retry", "-1"), status: 400, want: "digits"},
		{name: "retry too large", form: form("topic", "a", "retry", "99999999999999999999"), status: 400, want: "limit"},
		{name: "data over the limit", form: form("topic", "a", "data", long(2000)), status: 413, want: "over the limit"},
		{name: "body over the limit", form: form("topic", "a", "data", long(100<<10)), status: 413, want: "over"},
		{name: "data not UTF-8", form: form("topic", "a", "data", "\xff\xfe"), status: 400, want: "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.raw
			if tc.form != nil {
				body = tc.form.Encode()
			}
			req, _ := http.NewRequest(http.MethodPost, srv.URL+hubPath, strings.NewReader(body))
			switch tc.ctype {
			case "":
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			case "-":
			default:
				req.Header.Set("Content-Type", tc.ctype)
			}
			req.Header.Set("Authorization", "Bearer "+publisher(t))
			resp, got := do(t, req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tc.status, got)
			}
			if tc.status != 200 {
				got = errorOf(t, got)
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("body %q, want it to contain %q", got, tc.want)
			}
		})
	}
}

// Publishers need a token whose mercure.publish claim selects every topic
// of the update (URI templates included), presented in a header, the
// authorization query parameter or a cookie.
func TestPublishAuthorization(t *testing.T) {
	srv := startHub(t, func(c *config.Server) { c.HTTP.CORSOrigins = config.Strings{"https://app.example"} })
	books := token(t, pubKey, auth.MercureClaim{Publish: []string{"https://example.com/books/{id}", "news"}})
	send := func(tok, how, origin string, f url.Values) (int, string) {
		u := srv.URL + hubPath
		if how == "query" {
			u += "?authorization=" + url.QueryEscape(tok)
		}
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		switch how {
		case "header":
			req.Header.Set("Authorization", "Bearer "+tok)
		case "cookie":
			req.AddCookie(&http.Cookie{Name: "mercureAuthorization", Value: tok})
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, body := do(t, req)
		if resp.StatusCode == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("401 without a WWW-Authenticate challenge")
		}
		if resp.StatusCode != 200 {
			body = errorOf(t, body)
		}
		return resp.StatusCode, body
	}
	expired := token(t, pubKey, auth.MercureClaim{Publish: []string{"*"}}, func(c *jwt.RegisteredClaims) {
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute))
	})
	for _, tc := range []struct {
		name, tok, how, origin string
		form                   url.Values
		status                 int
		want                   string
	}{
		{"template claim selects the topic", books, "header", "", form("topic", "https://example.com/books/1"), 200, ""},
		{"exact claim", books, "header", "", form("topic", "news"), 200, ""},
		{"alternate selected too", books, "header", "", form("topic", "https://example.com/books/1", "topic", "news"), 200, ""},
		{"private needs the same claim", books, "header", "", form("topic", "news", "private", "on"), 200, ""},
		{"query parameter", books, "query", "", form("topic", "news"), 200, ""},
		{"cookie without Origin", books, "cookie", "", form("topic", "news"), 200, ""},
		{"cookie from an allowed origin", books, "cookie", "https://app.example", form("topic", "news"), 200, ""},

		{"no token", "", "", "", form("topic", "news"), 401, "needs a token"},
		{"token of the subscriber key", token(t, subKey, auth.MercureClaim{Publish: []string{"*"}}), "header", "", form("topic", "news"), 401, "invalid token"},
		{"expired token", expired, "header", "", form("topic", "news"), 401, "expired"},
		{"garbage token", "not.a.jwt", "header", "", form("topic", "news"), 401, "invalid token"},
		{"topic not selected", books, "header", "", form("topic", "https://example.com/movies/1"), 403, "does not allow"},
		{"alternate not selected", books, "header", "", form("topic", "news", "topic", "https://example.com/movies/1"), 403, "movies"},
		{"template does not cross segments", books, "header", "", form("topic", "https://example.com/books/1/reviews"), 403, "does not allow"},
		{"no mercure.publish claim", token(t, pubKey, auth.MercureClaim{Subscribe: []string{"*"}}), "header", "", form("topic", "news"), 403, "does not allow"},
		{"cookie from a foreign page", books, "cookie", "https://evil.example", form("topic", "news"), 403, "another origin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := send(tc.tok, tc.how, tc.origin, tc.form)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %q, want %d with %q", status, body, tc.status, tc.want)
			}
		})
	}
}

// Without any key (development mode) loopback clients publish without a
// token, as on /publish.
func TestPublishDevelopmentMode(t *testing.T) {
	srv := apptest.Start(t, nil)
	resp, body := post(t, srv.URL, "", form("topic", "a", "data", "x"))
	if resp.StatusCode != 200 {
		t.Fatalf("dev mode publish: %d %s", resp.StatusCode, body)
	}
	if _, err := pubsub.ParsePosition(body); err != nil {
		t.Fatalf("hub-generated id %q is not Herald's: %v", body, err)
	}
}

// --mercure-disable turns the endpoint off.
func TestDisabled(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) { c.Mercure.Disable = true })
	resp, _ := post(t, srv.URL, "", form("topic", "a"))
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("disabled endpoint answered %d", resp.StatusCode)
	}
}
