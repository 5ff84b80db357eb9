package chat_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/llm/openaitest"
)

func TestBadRequests(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: tokens(3)})
	srv := start(t, up, func(c *config.Server) {
		c.Chat.MaxMessages = 3
		c.Chat.MaxPromptBytes = 100
		c.Chat.MaxTokens = 50
		c.Chat.LLMAllowedModels = config.Strings{"other-model"}
	})
	user := `{"role":"user","content":"hi"}`
	tests := []struct {
		name, ctype, body string
		status            int
		want              string // in the error message
	}{
		{"no content type", "", `{"messages":[` + user + `]}`, 415, "Content-Type"},
		{"form body", "application/x-www-form-urlencoded", "messages=hi", 415, "application/json"},
		{"malformed JSON", "application/json", `{"messages":[`, 400, "malformed JSON"},
		{"not an object", "application/json", `"hi"`, 400, "malformed JSON"},
		{"trailing data", "application/json", `{"messages":[` + user + `]} {}`, 400, "trailing data"},
		{"unknown field", "application/json", `{"messages":[` + user + `],"temperature":2}`, 400, "unknown field"},
		{"unknown message field", "application/json", `{"messages":[{"role":"user","content":"hi","name":"x"}]}`, 400, "unknown field"},
		{"no messages", "application/json", `{}`, 400, `"messages" is required`},
		{"empty messages", "application/json", `{"messages":[]}`, 400, `"messages" is required`},
		{"missing role", "application/json", `{"messages":[{"content":"hi"}]}`, 400, "missing \"role\""},
		{"bad role", "application/json", `{"messages":[{"role":"wizard","content":"hi"}]}`, 400, "unknown role"},
		{"empty content", "application/json", `{"messages":[{"role":"user","content":"  "}]}`, 400, "empty \"content\""},
		{"no user message", "application/json", `{"messages":[{"role":"system","content":"be nice"}]}`, 400, "nothing to answer"},
		{"too many messages", "application/json", `{"messages":[` + strings.Repeat(user+",", 3) + user + `]}`, 413, "too many messages: 4 (limit 3)"},
		{"prompt too large", "application/json", `{"messages":[{"role":"user","content":"` + strings.Repeat("x", 101) + `"}]}`, 413, "prompt too large"},
		{"body too large", "application/json", `{"messages":[{"role":"user","content":"` + strings.Repeat("x", 200<<10) + `"}]}`, 413, "request body over"},
		{"model not allowed", "application/json", `{"messages":[` + user + `],"model":"gpt-5-pro"}`, 400, `model "gpt-5-pro" is not available here (available: fake-model, other-model)`},
		{"max tokens over the limit", "application/json", `{"messages":[` + user + `],"maxTokens":51}`, 400, `"maxTokens" must be between 1 and 50`},
		{"negative max tokens", "application/json", `{"messages":[` + user + `],"maxTokens":-1}`, 400, `"maxTokens"`},
		{"conversation too long", "application/json", `{"messages":[` + user + `],"conversation":"` + strings.Repeat("c", 129) + `"}`, 400, `"conversation"`},
		{"conversation with a newline", "application/json", `{"messages":[` + user + `],"conversation":"a\nb"}`, 400, `"conversation"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/chat", strings.NewReader(tt.body))
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			status, msg := do(t, req)
			if status != tt.status || !strings.Contains(msg, tt.want) {
				t.Fatalf("%d %q, want %d with %q", status, msg, tt.status, tt.want)
			}
		})
	}
	if up.Calls() != 0 {
		t.Fatalf("a bad request reached the upstream (%d calls)", up.Calls())
	}

	// And the good ones.
	var st struct{ ID, Model, Conversation string }
	if code := post(t, srv.URL+"/chat", `{"messages":[{"role":"system","content":"be brief"},`+user+`],"model":"other-model","conversation":"conv-1","maxTokens":50}`, &st); code != 201 || st.Model != "other-model" || st.Conversation != "conv-1" {
		t.Fatalf("%d %+v", code, st)
	}
	s := finish(t, srv.URL, st.ID)
	if s.done == nil || s.done.Conversation != "conv-1" || s.done.Model != "other-model" || up.Requests()[0].Model != "other-model" {
		t.Fatalf("done %+v", s.done)
	}
}

func TestUnknownStreamsAndMethods(t *testing.T) {
	srv := start(t, nil, nil)
	tests := []struct {
		method, path string
		status       int
	}{
		{"GET", "/chat/stream/aaaaaaaaaaaaaaaaaaaaaaaaaa", 404},
		{"GET", "/chat/stream/not-an-id", 404},
		{"POST", "/chat/stream/aaaaaaaaaaaaaaaaaaaaaaaaaa/cancel", 404},
		{"POST", "/chat/stream/nope/cancel", 404},
		{"DELETE", "/chat", 405},
		{"POST", "/chat/stream/aaaaaaaaaaaaaaaaaaaaaaaaaa", 405},
		{"GET", "/chat/stream/aaaaaaaaaaaaaaaaaaaaaaaaaa/cancel", 405},
		{"GET", "/chat/nope.js", 404},
		{"GET", "/chat/index.html", 404},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		status, msg := do(t, req)
		if status != tt.status || msg == "" {
			t.Errorf("%s %s: %d %q, want %d with a JSON error", tt.method, tt.path, status, msg, tt.status)
		}
	}
}

func TestConcurrencyLimits(t *testing.T) {
	body := `{"messages":[{"role":"user","content":"hi"}]}`
	t.Run("per client", func(t *testing.T) {
		up := openaitest.New(t, openaitest.Script{Tokens: tokens(5), Fail: openaitest.Hang, FailAfter: 1})
		srv := start(t, up, func(c *config.Server) { c.Chat.MaxConcurrentPerClient = 2 })
		var a, b struct{ ID string }
		post(t, srv.URL+"/chat", body, &a)
		post(t, srv.URL+"/chat", body, &b)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/chat", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if status, msg := do(t, req); status != 429 || !strings.Contains(msg, "limit 2") {
			t.Fatalf("third generation: %d %q, want 429", status, msg)
		}
		// Stopping one frees a slot.
		if code := post(t, srv.URL+"/chat/stream/"+a.ID+"/cancel", nil, nil); code != 200 {
			t.Fatalf("cancel: %d", code)
		}
		if code := post(t, srv.URL+"/chat", body, nil); code != 201 {
			t.Fatalf("after a cancel: %d, want 201", code)
		}
	})
	t.Run("global", func(t *testing.T) {
		up := openaitest.New(t, openaitest.Script{Tokens: tokens(5), Fail: openaitest.Hang, FailAfter: 1})
		srv := start(t, up, func(c *config.Server) {
			c.Chat.MaxConcurrent = 1
			c.Chat.MaxConcurrentPerClient = 10
		})
		post(t, srv.URL+"/chat", body, nil)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/chat", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("second generation: %d (Retry-After %q), want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	})
}

func TestChatPage(t *testing.T) {
	srv := start(t, nil, nil)
	for _, tt := range []struct{ path, ctype, contains string }{
		{"/chat", "text/html; charset=utf-8", `<script type="module" src="/chat/chat.js">`},
		{"/chat/chat.js", "text/javascript; charset=utf-8", "new EventSource("},
		{"/chat/chat.css", "text/css; charset=utf-8", ".msg"},
		{"/chat/markdown.js", "text/javascript; charset=utf-8", "export function render("},
	} {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tt.ctype || !strings.Contains(string(b), tt.contains) {
			t.Fatalf("GET %s: %d %q", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if tt.path == "/chat" && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Fatal("the page has no CSP")
		}
		if strings.Contains(string(b), "http://") || strings.Contains(string(b), "https://") {
			t.Fatalf("%s loads something from elsewhere", tt.path)
		}
	}
}

func TestChatDisabled(t *testing.T) {
	srv := start(t, nil, func(c *config.Server) { c.Chat.Enabled = false })
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/chat", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	if status, _ := do(t, req); status != 404 {
		t.Fatalf("POST /chat with --chat=false: %d, want 404", status)
	}
}

func TestDemoModelIsTheDefault(t *testing.T) {
	srv := start(t, nil, func(c *config.Server) { c.Chat.LLMDemoDelay = time.Millisecond })
	id := ask(t, srv, "What is Herald?")
	s := follow(t, srv.URL, id, "", 0)
	if s.done == nil || s.done.Model != "herald-demo" || s.text() != s.done.Text || !strings.Contains(s.done.Text, "What is Herald?") {
		t.Fatalf("demo answer: %+v", s.done)
	}
}

// do sends req and returns its status and JSON error message.
func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error string `json:"error"`
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode >= 400 && ct != "application/json" {
		t.Fatalf("%s %s: %d with Content-Type %q, want JSON", req.Method, req.URL.Path, resp.StatusCode, ct)
	}
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error
}
