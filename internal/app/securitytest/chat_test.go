package securitytest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
)

// TestChatStreamsAuthAndPrivacy checks the chat endpoints with keys
// configured: starting and watching an answer needs a token covering its
// topic, and nothing can be published into an answer's topic from another
// face, not even by a publisher whose token covers every topic (its topic
// is in the chat face's reserved namespace).
func TestChatStreamsAuthAndPrivacy(t *testing.T) {
	srv := startKeyed(t, func(c *config.Server) { c.Chat.LLMDemoDelay = time.Millisecond })
	user := mint(t, "user", nil, []string{"chat/*"}, time.Hour)
	other := mint(t, "other", nil, []string{"news"}, time.Hour)
	pub := mint(t, "backend", []string{"*"}, nil, time.Hour)
	create := func(token string) (*http.Response, []byte) {
		req := mustReq(t, http.MethodPost, srv.URL+"/chat")
		req.Body = jsonBody(map[string]any{"messages": []map[string]string{{"role": "user", "content": "hello there"}}})
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return do(t, req)
	}
	if resp, b := create(""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /chat without token: %d %s", resp.StatusCode, b)
	}
	resp, b := create(user)
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /chat: %d %s", resp.StatusCode, b)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(b, &created); err != nil || created.ID == "" {
		t.Fatalf("POST /chat answer %s", b)
	}
	for _, private := range []bool{true, false} {
		status, b := publish(t, srv.URL, pub, map[string]any{"topic": "chat/" + created.ID, "data": "leak-private", "private": private})
		if status != http.StatusForbidden || decodeErr(t, b).Code != "topic_reserved" {
			t.Fatalf("publish into a chat answer (private=%v): %d %s, want 403 topic_reserved", private, status, b)
		}
	}

	get := func(token string) *http.Response {
		req := mustReq(t, http.MethodGet, srv.URL+"/chat/stream/"+created.ID)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for name, tok := range map[string]string{"no token": "", "token for other topics": other} {
		resp := get(tok)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			t.Fatalf("watch with %s: %d", name, resp.StatusCode)
		}
	}
	resp = get(user)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("watch: %d %s", resp.StatusCode, b)
	}
	var all strings.Builder
	blocks, _ := testkit.NewStream(t, resp, nil).EndWithin(t, 20*time.Second)
	for _, b := range blocks {
		all.WriteString(b.Data)
	}
	if all.Len() == 0 || strings.Contains(all.String(), "leak-private") {
		t.Fatalf("chat stream: %q", all.String())
	}
}
