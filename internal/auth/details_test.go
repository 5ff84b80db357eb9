package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldpush/herald/internal/auth"
)

// signRaw signs a token whose header and claims are the JSON texts given,
// byte for byte, with HS256: tokens exactly as documents print them.
func signRaw(t testing.TB, header, claims string, key []byte) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	var h, c any
	if json.Unmarshal([]byte(header), &h) != nil || json.Unmarshal([]byte(claims), &c) != nil {
		t.Fatalf("not JSON: %s / %s", header, claims)
	}
	in := enc([]byte(header)) + "." + enc([]byte(claims))
	sig, err := jwt.SigningMethodHS256.Sign(in, key)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + enc(sig)
}

const atJWT = `{"alg": "HS256", "typ": "at+jwt"}`

// exp is an expiry an hour from now, for claims written as text.
func exp() string { return fmt.Sprint(time.Now().Add(time.Hour).Unix()) }

// The token shapes of the Mercure documents: the protocol draft's
// examples, the reference hub's documentation and demo.
func TestVerifyAuthorizationDetails(t *testing.T) {
	v := mustVerifier(t, auth.VerifierOptions{Key: secret})
	type check struct {
		role  auth.Role
		topic string
		want  bool
	}
	for _, c := range []struct {
		name, header, claims string
		checks               []check
		payloads             map[string]string // subscription matcher -> payload
	}{{
		name:   "draft: a self-issued subscriber token with a URL pattern",
		header: atJWT,
		claims: `{
  "aud": "https://hub.example.com/.well-known/mercure",
  "exp": ` + exp() + `,
  "sub": "urn:uuid:bb3de268-05b0-4c65-b44e-8f9acefc29d6",
  "authorization_details": [
    {
      "type": "mercure",
      "actions": ["subscribe"],
      "topics": [{"match": "https://example.com/books/:id", "match_type": "urlpattern"}]
    }
  ]
}`,
		checks: []check{
			{auth.RoleSubscriber, "https://example.com/books/1", true},
			{auth.RoleSubscriber, "https://example.com/books/1/chapters", false},
			{auth.RoleSubscriber, "https://example.com/books", false},
			{auth.RolePublisher, "https://example.com/books/1", false},
		},
	}, {
		name:   "draft: exact matchers narrower than the routing",
		header: atJWT,
		claims: `{"exp": ` + exp() + `, "authorization_details": [
    {
      "type": "mercure",
      "actions": ["subscribe"],
      "topics": [
        {"match": "https://example.com/books/1", "match_type": "exact"},
        {"match": "https://example.com/books/7", "match_type": "exact"}
      ]
    }
  ]}`,
		checks: []check{
			{auth.RoleSubscriber, "https://example.com/books/1", true},
			{auth.RoleSubscriber, "https://example.com/books/7", true},
			{auth.RoleSubscriber, "https://example.com/books/2", false},
		},
	}, {
		name:   "reference hub docs: a publisher that may publish anywhere",
		header: `{"alg":"HS256","typ":"at+jwt"}`,
		claims: `{"exp":` + exp() + `,"authorization_details":[{"type":"https://mercure.rocks/authorization-detail","actions":["publish"],"topics":[{"match":"*"}]}]}`,
		checks: []check{
			{auth.RolePublisher, "https://example.com/anything", true},
			{auth.RolePublisher, "chat/42", true},
			{auth.RoleSubscriber, "https://example.com/anything", false},
		},
	}, {
		name:   "reference hub demo: publish anything, subscribe to some, with a payload",
		header: atJWT,
		claims: `{
  "iss": "https://localhost",
  "aud": "https://localhost/.well-known/mercure",
  "exp": ` + exp() + `,
  "authorization_details": [
    { "type": "https://mercure.rocks/authorization-detail", "actions": ["publish"], "topics": [{ "match": "*" }] },
    {
      "type": "https://mercure.rocks/authorization-detail",
      "actions": ["subscribe"],
      "topics": [
        { "match": "https://example.com/my-private-topic" },
        { "match": "https://example.com/demo/books/:id.jsonld", "match_type": "urlpattern" },
        { "match": "/.well-known/mercure/subscriptions{/:matchType}?{/:match}?{/:subscriber}?", "match_type": "urlpattern" }
      ],
      "payload": { "user": "https://example.com/users/dunglas", "remoteAddr": "127.0.0.1" }
    }
  ]
}`,
		checks: []check{
			{auth.RolePublisher, "https://example.com/whatever", true},
			{auth.RoleSubscriber, "https://example.com/my-private-topic", true},
			{auth.RoleSubscriber, "https://example.com/demo/books/1.jsonld", true},
			{auth.RoleSubscriber, "https://example.com/demo/books/1.json", false},
			{auth.RoleSubscriber, "/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fexample.com%2Fa/urn%3Auuid%3A1", true},
			{auth.RoleSubscriber, "https://example.com/other", false},
		},
		payloads: map[string]string{
			"https://example.com/my-private-topic": `{ "user": "https://example.com/users/dunglas", "remoteAddr": "127.0.0.1" }`,
			"https://example.com/other":            "",
		},
	}, {
		name:   "draft: payloads, the first matching subscribe detail wins",
		header: atJWT,
		claims: `{"exp": ` + exp() + `,
    "authorization_details": [
        {
            "type": "mercure",
            "actions": ["subscribe"],
            "topics": [{"match": "https://example.com/foo"}],
            "payload": {"custom1": "data only available for this topic"}
        },
        {
            "type": "mercure",
            "actions": ["subscribe"],
            "topics": [{"match": "https://example.com/bar/:id", "match_type": "urlpattern"}],
            "payload": {"custom2": "data available for matching subscriptions"}
        },
        {
            "type": "mercure",
            "actions": ["subscribe"],
            "topics": [{"match": "*"}],
            "payload": {"custom3": "default data for all other subscriptions"}
        }
    ]
}`,
		checks: []check{{auth.RoleSubscriber, "anything", true}},
		payloads: map[string]string{
			"https://example.com/foo":     `{"custom1": "data only available for this topic"}`,
			"https://example.com/bar/:id": `{"custom2": "data available for matching subscriptions"}`,
			"https://example.com/baz":     `{"custom3": "default data for all other subscriptions"}`,
		},
	}, {
		name:   "both claim shapes: the grants add up",
		header: atJWT,
		claims: `{"exp": ` + exp() + `, "mercure": {"publish": ["orders/*"], "subscribe": ["news"], "payload": {"from": "mercure"}},
  "authorization_details": [{"type": "mercure", "actions": ["subscribe", "publish"], "topics": [{"match": "https://example.com/books/:id", "match_type": "urlpattern"}]}]}`,
		checks: []check{
			{auth.RolePublisher, "orders/1", true},
			{auth.RolePublisher, "https://example.com/books/1", true},
			{auth.RoleSubscriber, "news", true},
			{auth.RoleSubscriber, "https://example.com/books/1", true},
			{auth.RoleSubscriber, "orders/1", false},
		},
		payloads: map[string]string{"news": `{"from": "mercure"}`},
	}, {
		name:   "other detail types and unknown actions are ignored",
		header: `{"alg": "HS256", "typ": "application/AT+JWT"}`,
		claims: `{"exp": ` + exp() + `, "authorization_details": [
  {"type": "tenant", "topics": "acme", "actions": {"read": true}},
  {"type": "mercure", "actions": ["subscribe", "delete"], "topics": [{"match": "a"}]},
  {"type": "mercure", "actions": ["admin"], "topics": [{"match": "*"}]}
]}`,
		checks: []check{
			{auth.RoleSubscriber, "a", true},
			{auth.RoleSubscriber, "b", false},
			{auth.RolePublisher, "a", false},
		},
	}, {
		name:   "Herald also reads earlier drafts' spellings",
		header: atJWT,
		claims: `{"exp": ` + exp() + `, "authorization_details": [{"type": "mercure", "actions": ["subscribe"], "topics": [
  {"match": "https://example.com/a/:id", "matchType": "URLPattern"},
  {"match_urlpattern": "https://example.com/b/:id"},
  {"match": "https://example.com/c/:id", "matchType": "Exact"}
]}]}`,
		checks: []check{
			{auth.RoleSubscriber, "https://example.com/a/1", true},
			{auth.RoleSubscriber, "https://example.com/b/1", true},
			{auth.RoleSubscriber, "https://example.com/c/1", false},
			{auth.RoleSubscriber, "https://example.com/c/:id", true},
		},
	}} {
		t.Run(c.name, func(t *testing.T) {
			g, err := v.Verify(context.Background(), signRaw(t, c.header, c.claims, secret))
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range c.checks {
				got := g.CanSubscribe(ch.topic)
				if ch.role == auth.RolePublisher {
					got = g.CanPublish(ch.topic)
				}
				if got != ch.want {
					t.Errorf("%s %q: %v, want %v", ch.role, ch.topic, got, ch.want)
				}
			}
			for match, want := range c.payloads {
				if got := string(g.SubscriptionPayload(match)); got != want {
					t.Errorf("payload of a subscription to %q: %s, want %s", match, got, want)
				}
			}
		})
	}
}

// TestVerifyAuthorizationDetailsRefused: a malformed Mercure detail fails
// the whole token (401, saying what is wrong); details in a token that is
// not an access token, or an access token without exp, are refused.
func TestVerifyAuthorizationDetailsRefused(t *testing.T) {
	v := mustVerifier(t, auth.VerifierOptions{Key: secret})
	detail := func(body string) string {
		return `{"exp": ` + exp() + `, "authorization_details": [{"type": "mercure", "actions": ["publish"], "topics": [{"match": "ok"}]}, ` + body + `]}`
	}
	for _, c := range []struct{ name, header, claims, want string }{
		{"typ JWT", `{"alg":"HS256","typ":"JWT"}`, detail(`{"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "*"}]}`), `"typ": "at+jwt"`},
		{"no typ", `{"alg":"HS256"}`, detail(`{"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "*"}]}`), `"typ": "at+jwt"`},
		{"no exp", atJWT, `{"authorization_details": [{"type": "mercure", "actions": ["publish"], "topics": [{"match": "*"}]}]}`, "exp"},
		{"not an array", atJWT, `{"exp": ` + exp() + `, "authorization_details": {"type": "mercure"}}`, "not a JSON array"},
		{"entry not an object", atJWT, detail(`"mercure"`), "[1]: not a JSON object"},
		{"no actions", atJWT, detail(`{"type": "mercure", "topics": [{"match": "*"}]}`), `[1]: "actions" is missing`},
		{"empty actions", atJWT, detail(`{"type": "mercure", "actions": [], "topics": [{"match": "*"}]}`), `"actions" is missing or empty`},
		{"non-string action", atJWT, detail(`{"type": "mercure", "actions": [1], "topics": [{"match": "*"}]}`), "array of strings"},
		{"no topics", atJWT, detail(`{"type": "mercure", "actions": ["publish"]}`), `"topics" is missing`},
		{"topic not an object", atJWT, detail(`{"type": "mercure", "actions": ["publish"], "topics": ["*"]}`), "must be an object"},
		{"topic null", atJWT, detail(`{"type": "mercure", "actions": ["publish"], "topics": [null]}`), "must be an object"},
		{"no match", atJWT, detail(`{"type": "mercure", "actions": ["publish"], "topics": [{"match_type": "exact"}]}`), `"match" property is missing`},
		{"empty match", atJWT, detail(`{"type": "mercure", "actions": ["publish"], "topics": [{"match": ""}]}`), "empty"},
		{"unknown match_type", atJWT, detail(`{"type": "mercure", "actions": ["publish"], "topics": [{"match": ".*", "match_type": "regexp"}]}`), `unsupported "match_type" "regexp"`},
		{"match_type in the wrong case", atJWT, detail(`{"type": "mercure", "actions": ["publish"], "topics": [{"match": "a", "match_type": "URLPattern"}]}`), "unsupported"},
		{"bad URL pattern", atJWT, detail(`{"type": "mercure", "actions": ["publish"], "topics": [{"match": "https://example.com/(", "match_type": "urlpattern"}]}`), "URL pattern"},
		{"control character", atJWT, detail(`{"type": "mercure", "actions": ["publish"], "topics": [{"match": "a\u0000b"}]}`), "control character"},
		{"two spellings", atJWT, detail(`{"type": "mercure", "actions": ["publish"], "topics": [{"match": "a", "match_urlpattern": "/b"}]}`), "cannot be combined"},
		{"match not a string", atJWT, detail(`{"type": "mercure", "actions": ["publish"], "topics": [{"match": 1}]}`), "must be strings"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), signRaw(t, c.header, c.claims, secret))
			var ae *auth.Error
			if !errors.As(err, &ae) || ae.Status != 401 || ae.Code != auth.CodeTokenInvalid || !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("err = %v, want a 401 token_invalid", err)
			}
			if !strings.Contains(ae.Msg, c.want) {
				t.Fatalf("message %q does not say %q", ae.Msg, c.want)
			}
		})
	}
	// A token of another type whose details are all of other types is
	// not refused: it is not about Mercure.
	tok := signRaw(t, `{"alg":"HS256","typ":"JWT"}`, `{"mercure": {"subscribe": ["a"]}, "authorization_details": [{"type": "payment_initiation", "actions": ["initiate"]}]}`, secret)
	if g, err := v.Verify(context.Background(), tok); err != nil || !g.CanSubscribe("a") {
		t.Fatalf("a 0.x token with foreign details: %v", err)
	}
}

// TestDetailLimits: the number of details and of their topics is bounded.
func TestDetailLimits(t *testing.T) {
	one := `{"type": "mercure", "actions": ["publish"], "topics": [{"match": "a"}]}`
	many := strings.Repeat(one+",", auth.MaxDetails) + one
	if _, err := auth.ParseAuthorizationDetails(json.RawMessage("[" + many + "]")); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("%d details: %v", auth.MaxDetails+1, err)
	}
	topics := strings.Repeat(`{"match": "a"},`, auth.MaxSelectors) + `{"match": "a"}`
	if _, err := auth.ParseAuthorizationDetails(json.RawMessage(`[{"type": "mercure", "actions": ["publish"], "topics": [` + topics + `]}]`)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("%d topics: %v", auth.MaxSelectors+1, err)
	}
	if d, err := auth.ParseAuthorizationDetails(nil); err != nil || d != nil {
		t.Fatalf("no claim: %v %v", d, err)
	}
}
