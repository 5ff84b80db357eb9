package securitytest_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/internal/transport"
)

func TestDevModeLoopbackPublishOnly(t *testing.T) {
	srv := startKeylessBehindProxy(t)
	// Loopback client: may publish.
	mustPublish(t, srv.URL, "", map[string]any{"topic": "a", "data": "x"})
	// The same request relayed by a trusted proxy for a remote client.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/publish", strings.NewReader("topic=a&data=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	resp, b := do(t, req)
	if resp.StatusCode != http.StatusForbidden || decodeErr(t, b).Code != auth.CodeLoopbackOnly {
		t.Fatalf("remote publish in dev mode: %d %s, want 403 loopback_only", resp.StatusCode, b)
	}
	// A spoofed X-Forwarded-For from an untrusted peer is ignored: the
	// loopback peer is the client. (Here the peer is trusted, so the
	// right-most untrusted hop counts: a client cannot hide behind a
	// forged "127.0.0.1" on the left.)
	req2, _ := http.NewRequest(http.MethodPost, srv.URL+"/publish", strings.NewReader("topic=a&data=x"))
	req2.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req2.Header.Set("X-Forwarded-For", "127.0.0.1, 203.0.113.7")
	resp, b = do(t, req2)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged left-most loopback hop: %d %s, want 403", resp.StatusCode, b)
	}
	// Anonymous subscribing works, and private events reach no one.
	s := subscribe(t, srv.URL, "", viaNone, "", "a")
	mustPublish(t, srv.URL, "", map[string]any{"topic": "a", "data": "secret", "private": true})
	mustPublish(t, srv.URL, "", map[string]any{"topic": "a", "data": "end"})
	if got := collect(t, s, "end"); len(got) != 0 {
		t.Fatalf("dev-mode subscriber got %q, want nothing (private events reach no one without keys)", got)
	}
}

func startKeylessBehindProxy(t *testing.T) *serverURL {
	srv := startWith(t, func(c *config.Server) { c.HTTP.TrustedProxies = config.Strings{"127.0.0.1"} })
	return &serverURL{srv.URL}
}

type serverURL struct{ URL string }

func TestPublishNeedsAToken(t *testing.T) {
	srv := startKeyed(t, nil)
	pub := mint(t, "backend", []string{"orders/*"}, nil, time.Hour)
	subOnly := mint(t, "alice", nil, []string{"*"}, time.Hour)
	tests := []struct {
		name   string
		token  string
		topics []string
		status int
		code   string
	}{
		{"no token", "", []string{"orders/1"}, 401, auth.CodeTokenMissing},
		{"subscriber token", subOnly, []string{"orders/1"}, 403, auth.CodeTopicForbidden},
		{"topic not covered", pub, []string{"users/1"}, 403, auth.CodeTopicForbidden},
		{"one of two topics not covered", pub, []string{"orders/1", "users/1"}, 403, auth.CodeTopicForbidden},
		{"nested topic not covered by *", pub, []string{"orders/1/items"}, 403, auth.CodeTopicForbidden},
		{"expired", mint(t, "backend", []string{"*"}, nil, -time.Minute), []string{"orders/1"}, 401, auth.CodeTokenExpired},
		{"covered", pub, []string{"orders/1", "orders/2"}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, b := publish(t, srv.URL, tt.token, map[string]any{"topics": tt.topics, "data": "x"})
			if status != tt.status {
				t.Fatalf("status %d (%s), want %d", status, b, tt.status)
			}
			if tt.code != "" && decodeErr(t, b).Code != tt.code {
				t.Fatalf("body %s, want code %s", b, tt.code)
			}
		})
	}
}

func TestSubscribeStatuses(t *testing.T) {
	srv := startKeyed(t, nil)
	alice := mint(t, "alice", nil, []string{"orders/*"}, time.Hour)
	tests := []struct {
		name   string
		token  string
		how    via
		topics []string
		status int
		code   string
	}{
		{"anonymous", "", viaNone, []string{"orders/1"}, 401, auth.CodeTokenMissing},
		{"covered, header", alice, viaHeader, []string{"orders/1"}, 200, ""},
		{"covered, cookie", alice, viaCookie, []string{"orders/1"}, 200, ""},
		{"covered, query", alice, viaQuery, []string{"orders/1"}, 200, ""},
		{"not covered", alice, viaHeader, []string{"orders/1", "admin"}, 403, auth.CodeTopicForbidden},
		{"expired", mint(t, "alice", nil, []string{"*"}, -time.Second), viaCookie, []string{"orders/1"}, 401, auth.CodeTokenExpired},
		{"forged", alice[:len(alice)-4] + "AAAA", viaQuery, []string{"orders/1"}, 401, auth.CodeTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, resp, b := open(t, srv.URL, tt.token, tt.how, "", tt.topics...)
			if tt.status == 200 {
				if s == nil {
					t.Fatalf("status %d %s, want 200", resp.StatusCode, b)
				}
				return
			}
			if s != nil || resp.StatusCode != tt.status || decodeErr(t, b).Code != tt.code {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, b, tt.status, tt.code)
			}
			if tt.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	// With --allow-anonymous: anonymous in (public only), a token that does
	// not cover a topic still gets its public events.
	srv2 := startKeyed(t, func(c *config.Server) { c.Auth.AllowAnonymous = true })
	subscribe(t, srv2.URL, "", viaNone, "", "orders/1")
	subscribe(t, srv2.URL, alice, viaHeader, "", "admin")
	// A bad token is refused even where anonymous access would pass.
	if s, resp, _ := open(t, srv2.URL, "garbage", viaHeader, "", "orders/1"); s != nil || resp.StatusCode != 401 {
		t.Fatalf("bad token with anonymous allowed: %d, want 401", resp.StatusCode)
	}
}

func TestSeparatePublisherAndSubscriberKeys(t *testing.T) {
	const pubSecret = "publisher-secret-publisher-secret-0123456789"
	srv := startWith(t, func(c *config.Server) {
		c.Auth.Publisher.Key = pubSecret
		c.Auth.Subscriber.Key = secret
	})
	subKeyed := mint(t, "x", []string{"*"}, []string{"*"}, time.Hour) // signed with the subscriber key
	if status, b := publish(t, srv.URL, subKeyed, map[string]any{"topic": "a", "data": "x"}); status != 401 {
		t.Fatalf("publish with a subscriber-key token: %d %s, want 401", status, b)
	}
	pubTok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, &auth.Claims{Mercure: &auth.MercureClaim{Publish: []string{"*"}, Subscribe: []string{"*"}}}).SignedString([]byte(pubSecret))
	mustPublish(t, srv.URL, pubTok, map[string]any{"topic": "a", "data": "x"})
	if s, resp, _ := open(t, srv.URL, pubTok, viaHeader, "", "a"); s != nil || resp.StatusCode != 401 {
		t.Fatalf("subscribe with a publisher-key token: %d, want 401", resp.StatusCode)
	}
	subscribe(t, srv.URL, subKeyed, viaHeader, "", "a")
}

// TestPrivateEventsNeverLeak checks every delivery path of the SSE
// transport: live events, history replay on resume, retained events, and
// events of a topic the subscriber does not follow.
func TestPrivateEventsNeverLeak(t *testing.T) {
	srv := startKeyed(t, func(c *config.Server) { c.Auth.AllowAnonymous = true })
	pub := mint(t, "backend", []string{"*"}, nil, time.Hour)
	alice := mint(t, "alice", nil, []string{"secret/*"}, time.Hour) // may see secret/* privately
	bob := mint(t, "bob", nil, []string{"public/*"}, time.Hour)     // may see public/* privately

	type sub struct {
		name  string
		token string
		how   via
		want  func(private bool, topic string) bool
	}
	subs := []sub{
		{"alice/header", alice, viaHeader, func(p bool, topic string) bool { return !p || topic == "secret/a" }},
		{"alice/cookie", alice, viaCookie, func(p bool, topic string) bool { return !p || topic == "secret/a" }},
		{"alice/query", alice, viaQuery, func(p bool, topic string) bool { return !p || topic == "secret/a" }},
		{"bob", bob, viaHeader, func(p bool, topic string) bool { return !p || topic == "public/b" }},
		{"anonymous", "", viaNone, func(p bool, _ string) bool { return !p }},
	}
	type pubEv struct {
		data    string
		topics  []string
		private bool
	}
	evs := []pubEv{
		{"priv-secret", []string{"secret/a"}, true},
		{"pub-secret", []string{"secret/a"}, false},
		{"priv-public", []string{"public/b"}, true},
		{"priv-both", []string{"secret/a", "public/b"}, true},
		{"priv-other", []string{"secret/other"}, true}, // a topic no one here follows
		{"pub-public", []string{"public/b"}, false},
	}
	expect := func(s sub) []string {
		var out []string
		for _, e := range evs {
			follows := false
			visible := false
			for _, topic := range e.topics {
				if topic == "secret/a" || topic == "public/b" {
					follows = true
					if s.want(e.private, topic) {
						visible = true
					}
				}
			}
			if follows && visible {
				out = append(out, e.data)
			}
		}
		return out
	}
	publishAll := func() {
		for _, e := range evs {
			mustPublish(t, srv.URL, pub, map[string]any{"topics": e.topics, "data": e.data, "private": e.private})
		}
		mustPublish(t, srv.URL, pub, map[string]any{"topics": []string{"secret/a", "public/b"}, "data": "end"})
	}
	start := mustPublish(t, srv.URL, pub, map[string]any{"topic": "warmup", "data": "x"})

	t.Run("live", func(t *testing.T) {
		streams := make([]*testkit.Stream, len(subs))
		for i, s := range subs {
			streams[i] = subscribe(t, srv.URL, s.token, s.how, "", "secret/a", "public/b")
		}
		publishAll()
		for i, s := range subs {
			if got, want := collect(t, streams[i], "end"), expect(s); !slices.Equal(got, want) {
				t.Errorf("%s live: got %q, want %q", s.name, got, want)
			}
		}
	})
	t.Run("history replay on resume", func(t *testing.T) {
		for _, s := range subs {
			st := subscribe(t, srv.URL, s.token, s.how, start, "secret/a", "public/b")
			// The replay holds the live test's events once.
			if got, want := collect(t, st, "end"), expect(s); !slices.Equal(got, want) {
				t.Errorf("%s replay: got %q, want %q", s.name, got, want)
			}
			st.Close()
		}
	})
	t.Run("retained", func(t *testing.T) {
		mustPublish(t, srv.URL, pub, map[string]any{"topic": "secret/a", "data": "retained-private", "retain": true, "private": true})
		mustPublish(t, srv.URL, pub, map[string]any{"topic": "public/b", "data": "retained-public", "retain": true})
		for _, s := range subs {
			st := subscribe(t, srv.URL, s.token, s.how, "", "secret/a", "public/b")
			mustPublish(t, srv.URL, pub, map[string]any{"topic": "public/b", "data": "end-" + s.name})
			got := collect(t, st, "end-"+s.name)
			want := []string{"retained-public"}
			if s.want(true, "secret/a") {
				want = []string{"retained-private", "retained-public"}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s retained: got %q, want %q", s.name, got, want)
			}
			st.Close()
		}
	})
}

func TestStreamEndsWhenTheTokenExpires(t *testing.T) {
	srv := startKeyed(t, nil)
	exp := float64(time.Now().Add(1200*time.Millisecond).UnixMilli()) / 1000
	tok := signClaims(t, jwt.MapClaims{"sub": "alice", "exp": exp, "mercure": map[string]any{"subscribe": []string{"*"}}})
	s := subscribe(t, srv.URL, tok, viaQuery, "", "a")
	pub := mint(t, "backend", []string{"*"}, nil, time.Hour)
	mustPublish(t, srv.URL, pub, map[string]any{"topic": "a", "data": "before"})
	if ev := s.Next(t); ev.Data != "before" {
		t.Fatalf("got %+v", ev)
	}
	ev := s.Next(t)
	if ev.Type != transport.AuthExpiredEventType {
		t.Fatalf("got %+v, want %s", ev, transport.AuthExpiredEventType)
	}
	if rest, err := s.End(t); err != nil || len(rest) > 0 {
		t.Fatalf("after herald.auth-expired: %v, %v; want the stream's clean end", rest, err)
	}
	// Reconnecting with the same token is refused (401 token_expired); a
	// fresh token resumes from the last id the client saw.
	if st, resp, b := open(t, srv.URL, tok, viaQuery, "", "a"); st != nil || decodeErr(t, b).Code != auth.CodeTokenExpired {
		t.Fatalf("reconnect with the expired token: %d %s", resp.StatusCode, b)
	}
}
