package chat_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/llm/openaitest"
)

// With a key configured, starting, watching and stopping an answer needs a
// token that may subscribe to its topic.
func TestChatNeedsSubscribeRightsWhenAuthIsOn(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	token := func(subscribe ...string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"exp":     time.Now().Add(time.Hour).Unix(),
			"mercure": map[string]any{"subscribe": subscribe},
		})
		s, err := tok.SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	up := openaitest.New(t, openaitest.Script{Tokens: tokens(5)})
	srv := start(t, up, func(c *config.Server) { c.Auth.JWT.Key = secret })
	body := `{"messages":[{"role":"user","content":"hi"}]}`
	create := func(tok string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/chat", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		return do(t, req)
	}
	if status, _ := create(""); status != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", status)
	}
	if status, _ := create(token("news")); status != http.StatusForbidden {
		t.Fatalf("token for other topics: %d, want 403", status)
	}
	if up.Calls() != 0 {
		t.Fatal("a refused request reached the upstream")
	}
	good := token("chat/*")
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/chat", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+good)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("token for chat/*: %d, want 201", resp.StatusCode)
	}
	stream := resp.Header.Get("Location")
	for _, tt := range []struct {
		query  string
		status int
	}{{"", 401}, {"?authorization=" + token("news"), 403}, {"?authorization=" + good, 200}} {
		r, err := http.Get(srv.URL + stream + tt.query)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != tt.status {
			t.Errorf("GET %s with %q: %d, want %d", stream, tt.query[:min(20, len(tt.query))], r.StatusCode, tt.status)
		}
	}
	req, _ = http.NewRequest(http.MethodPost, srv.URL+stream+"/cancel", nil)
	if status, _ := do(t, req); status != http.StatusUnauthorized {
		t.Fatalf("cancel without a token: %d, want 401", status)
	}
}
