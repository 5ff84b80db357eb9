package aisdk_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldpush/herald/internal/aisdk"
	"github.com/heraldpush/herald/internal/chat"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/llm"
	"github.com/heraldpush/herald/internal/llm/openaitest"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/sse"
)

// gated starts a fake upstream answering n tokens that holds its token at
// index at until release is called, so that a test is sure to act
// mid-answer. (Its Script().Text() waits for the release too: use
// words(n).)
func gated(t testing.TB, n, at int) (up *openaitest.Server, release func()) {
	w := words(n)
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	up = openaitest.New(t, openaitest.Script{N: n, Token: func(i int) string {
		if i == at {
			select {
			case <-gate:
			case <-time.After(30 * time.Second):
			}
		}
		return w[i]
	}})
	// Registered after the server's cleanup, so run before it: the
	// server's Close waits for the held response.
	t.Cleanup(release)
	return up, release
}

func TestChatStreamsTheAnswer(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: words(40), Usage: &llm.Usage{PromptTokens: 3, CompletionTokens: 40, TotalTokens: 43}})
	srv := start(t, up, nil)
	body := `{"id":"chat-1","trigger":"submit-message","messages":[
		{"id":"s","role":"system","parts":[{"type":"text","text":"Be terse."}]},
		{"id":"u1","role":"user","metadata":{"x":1},"parts":[{"type":"text","text":"first "},{"type":"text","text":"question","state":"done"}]},
		{"id":"a1","role":"assistant","parts":[{"type":"step-start"},{"type":"reasoning","text":"hmm"},{"type":"text","text":"first answer","state":"done","providerMetadata":{"p":{}}}]},
		{"id":"a2","role":"assistant","parts":[]},
		{"id":"u2","role":"user","parts":[{"type":"text","text":"second question"},{"type":"data-note","data":{"n":1}}]}]}`
	r := send(t, http.MethodPost, srv.URL+"/ai/chat", body, 0, nil)
	wantWhole(t, r, "finish")
	if want := up.Script().Text(); r.text != want {
		t.Fatalf("streamed text:\n got %q\nwant %q", r.text, want)
	}
	if fr := r.last("finish")["finishReason"]; fr != "stop" {
		t.Fatalf("finishReason %v, want stop", fr)
	}
	if up.Calls() != 1 {
		t.Fatalf("upstream called %d times, want once", up.Calls())
	}
	got := up.Requests()[0].Messages
	want := []llm.Message{{Role: "system", Content: "Be terse."}, {Role: "user", Content: "first question"}, {Role: "assistant", Content: "first answer"}, {Role: "user", Content: "second question"}}
	if len(got) != len(want) {
		t.Fatalf("upstream messages %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("upstream message %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// The message id is the answer's chat stream: Herald's own endpoint
	// has the same answer.
	var st struct {
		Text string `json:"text"`
	}
	fin := finalEvent(t, srv.URL, r.messageID)
	if fin.Type != chat.EventDone || json.Unmarshal([]byte(fin.Data), &st) != nil || st.Text != r.text {
		t.Fatalf("final event of chat/%s: %s %s", r.messageID, fin.Type, fin.Data)
	}
	// Finished: nothing to resume.
	if r := send(t, http.MethodGet, srv.URL+"/ai/chat/chat-1/stream", "", 0, nil); r.status != http.StatusNoContent {
		t.Fatalf("resume after the end: %d, want 204", r.status)
	}
}

// finalEvent returns the final event of chat stream id, as a new watcher of
// Herald's own endpoint gets it.
func finalEvent(t testing.TB, base, id string) sse.Event {
	t.Helper()
	resp, err := http.Get(base + "/chat/stream/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var last sse.Event
	for ev, err := range sse.Read(resp.Body) {
		if err != nil {
			t.Fatal(err)
		}
		last = ev
	}
	return last
}

// A client that disconnects (as the SDK's stop() does) leaves the
// generation running; the resume endpoint replays the whole answer from its
// start, with the same message id, and the model was asked once.
func TestDisconnectLeavesTheAnswerRunningAndResumeReplaysIt(t *testing.T) {
	up, release := gated(t, 120, 60)
	srv := start(t, up, nil)

	first := send(t, http.MethodPost, srv.URL+"/ai/chat", uiBody("chat-drop", "tell me"), 20, nil)
	if len(first.chunks) != 22 || first.err != nil {
		t.Fatalf("first read: %v, %v", first.types(), first.err)
	}
	// Two resumes: one dropped too, one to the end.
	second := send(t, http.MethodGet, srv.URL+"/ai/chat/chat-drop/stream", "", 40, nil)
	if second.status != http.StatusOK || second.messageID != first.messageID || !strings.HasPrefix(second.text, first.text) {
		t.Fatalf("resume: status %d, message %q (first %q), text %q", second.status, second.messageID, first.messageID, second.text)
	}
	// Released once the replay is under way: the answer is still running
	// when the resume asks for it.
	third := send(t, http.MethodGet, srv.URL+"/ai/chat/chat-drop/stream", "", 0, func(int, string) { release() })
	wantWhole(t, third, "finish")
	if want := up.Script().Text(); third.text != want || third.messageID != first.messageID {
		t.Fatalf("replayed text:\n got %q\nwant %q", third.text, want)
	}
	if up.Calls() != 1 || up.Aborted() != 0 {
		t.Fatalf("upstream: %d calls, %d aborted; want 1 call, none aborted", up.Calls(), up.Aborted())
	}
	if r := send(t, http.MethodGet, srv.URL+"/ai/chat/chat-drop/stream", "", 0, nil); r.status != http.StatusNoContent {
		t.Fatalf("resume after the end: %d, want 204", r.status)
	}
}

func TestResumeWithoutAnswerIs204(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: words(3)})
	srv := start(t, up, nil)
	for _, id := range []string{"never-used", "%F0%9F%98%80", "a.b"} {
		r := send(t, http.MethodGet, srv.URL+"/ai/chat/"+id+"/stream", "", 0, nil)
		if r.status != http.StatusNoContent || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("GET stream of chat %q: %d, Cache-Control %q; want 204, no-store", id, r.status, r.header.Get("Cache-Control"))
		}
	}
}

// The stop endpoint cancels the upstream, keeps the partial answer, ends
// every stream of the answer with text-end and abort, and clears the chat's
// active answer; stale and repeated stops stop nothing.
func TestStopEndpoint(t *testing.T) {
	up, release := gated(t, 100, 30)
	srv := start(t, up, nil)
	stopURL := srv.URL + "/ai/chat/chat-stop/stop"

	var stopped aisdk.StopResult
	r := send(t, http.MethodPost, srv.URL+"/ai/chat", uiBody("chat-stop", "q"), 0, func(n int, id string) {
		if n != 30 {
			return
		}
		var stale aisdk.StopResult
		if code := post(t, stopURL, stopBody("not-this-one"), &stale); code != http.StatusOK || stale.Stopped {
			t.Errorf("stop naming another answer: %d %+v, want 200, not stopped", code, stale)
		}
		if code := post(t, stopURL, stopBody(id), &stopped); code != http.StatusOK {
			t.Errorf("stop: %d", code)
		}
	})
	if !stopped.Stopped || stopped.ActiveStreamID != r.messageID {
		t.Fatalf("stop answered %+v, want stopped, activeStreamId %q", stopped, r.messageID)
	}
	// The stream the client still reads ends with the partial answer.
	wantWhole(t, r, "abort")
	if want := strings.Join(words(100)[:30], ""); r.text != want {
		t.Fatalf("text after stop:\n got %q\nwant %q", r.text, want)
	}
	var d chat.Done
	if fin := finalEvent(t, srv.URL, r.messageID); json.Unmarshal([]byte(fin.Data), &d) != nil || !d.Stopped || d.Text != r.text {
		t.Fatalf("final event %s %s: want a stopped done with the partial text", fin.Type, fin.Data)
	}
	release()
	testkit.WaitFor(t, "the upstream request to be cancelled", func() bool { return up.Aborted() == 1 })
	if r := send(t, http.MethodGet, srv.URL+"/ai/chat/chat-stop/stream", "", 0, nil); r.status != http.StatusNoContent {
		t.Fatalf("resume after a stop: %d, want 204", r.status)
	}
	var again aisdk.StopResult
	if code := post(t, stopURL, "", &again); code != http.StatusOK || again.Stopped {
		t.Fatalf("second stop: %d %+v, want 200, not stopped", code, again)
	}
	if up.Calls() != 1 {
		t.Fatalf("upstream called %d times", up.Calls())
	}
}

// stopBody is a stop request for the answer whose message id is id, with
// the client's copy of the partial answer as the SDK's docs send it.
func stopBody(id string) string {
	b, _ := json.Marshal(aisdk.StopRequest{ActiveStreamID: id, AssistantMessage: json.RawMessage(`{"id":"x","role":"assistant","parts":[]}`)})
	return string(b)
}

// A new message to a chat whose answer still runs replaces it: the old
// answer is stopped (its streams end with abort) and the resume endpoint
// serves the new one.
func TestNewMessageReplacesTheRunningAnswer(t *testing.T) {
	up, _ := gated(t, 50, 10)
	srv := start(t, up, nil)

	var second reply
	first := send(t, http.MethodPost, srv.URL+"/ai/chat", uiBody("chat-2", "one"), 0, func(n int, _ string) {
		if n == 10 {
			second = send(t, http.MethodPost, srv.URL+"/ai/chat", uiBody("chat-2", "two"), 5, nil)
		}
	})
	wantWhole(t, first, "abort")
	if second.status != http.StatusOK || second.messageID == "" || second.messageID == first.messageID {
		t.Fatalf("second answer: status %d, message %q (first %q)", second.status, second.messageID, first.messageID)
	}
	resumed := send(t, http.MethodGet, srv.URL+"/ai/chat/chat-2/stream", "", 3, nil)
	if resumed.messageID != second.messageID {
		t.Fatalf("resume serves answer %q, want the new one %q", resumed.messageID, second.messageID)
	}
	if up.Calls() != 2 {
		t.Fatalf("upstream called %d times, want 2", up.Calls())
	}
}

// A stream cut off by the server before the end of the answer (here an
// administrator's disconnect) is aborted: the client gets a read error,
// neither [DONE] nor a clean end, and can resume.
func TestCutOffStreamIsAborted(t *testing.T) {
	up, release := gated(t, 60, 20)
	srv := start(t, up, nil)
	r := send(t, http.MethodPost, srv.URL+"/ai/chat", uiBody("chat-cut", "q"), 0, func(n int, id string) {
		if n == 20 {
			if k := srv.App.Hub().Disconnect(chat.TopicPrefix + id); k != 1 {
				t.Errorf("Disconnect ended %d subscriptions, want 1", k)
			}
		}
	})
	if r.done || r.ended || r.err == nil || !errors.Is(r.err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut-off stream: [DONE] %v, clean end %v, error %v; want an unexpected EOF", r.done, r.ended, r.err)
	}
	again := send(t, http.MethodGet, srv.URL+"/ai/chat/chat-cut/stream", "", 0, func(int, string) { release() })
	wantWhole(t, again, "finish")
	if again.text != up.Script().Text() || up.Calls() != 1 {
		t.Fatalf("resumed text %q, %d upstream calls", again.text, up.Calls())
	}
}

func TestUpstreamFailureEndsWithAnErrorChunk(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: words(10), Fail: openaitest.ErrorChunk, FailAfter: 4, ErrorMessage: "The model is overloaded"})
	srv := start(t, up, nil)
	r := send(t, http.MethodPost, srv.URL+"/ai/chat", uiBody("chat-err", "q"), 0, nil)
	wantWhole(t, r, "error")
	if msg, _ := r.last("error")["errorText"].(string); !strings.Contains(msg, "The model is overloaded") {
		t.Fatalf("errorText %q", msg)
	}
	if r.text != strings.Join(words(10)[:4], "") {
		t.Fatalf("text before the failure: %q", r.text)
	}
}

func TestFinishReasonLength(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: words(10), FinishReason: "length"})
	srv := start(t, up, nil)
	r := send(t, http.MethodPost, srv.URL+"/ai/chat", uiBody("chat-len", "q"), 0, nil)
	wantWhole(t, r, "finish")
	if fr := r.last("finish")["finishReason"]; fr != "length" {
		t.Fatalf("finishReason %v, want length", fr)
	}
}

func TestBadRequests(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: words(3)})
	srv := start(t, up, func(c *config.Server) { c.Chat.MaxMessages = 3 })
	msg := func(role, text string) string {
		return `{"id":"m","role":"` + role + `","parts":[{"type":"text","text":"` + text + `"}]}`
	}
	for _, tt := range []struct {
		name, method, path, ctype, body string
		status                          int
		want                            string
	}{
		{"not JSON", "POST", "/ai/chat", "text/plain", uiBody("c", "q"), 415, "send application/json"},
		{"malformed", "POST", "/ai/chat", "application/json", `{"id":`, 400, "malformed JSON"},
		{"not an object", "POST", "/ai/chat", "application/json", `[1]`, 400, "malformed JSON"},
		{"unknown field", "POST", "/ai/chat", "application/json", `{"id":"c","messages":[` + msg("user", "q") + `],"prompt":"x"}`, 400, `unknown field "prompt"`},
		{"no id", "POST", "/ai/chat", "application/json", `{"messages":[` + msg("user", "q") + `]}`, 400, `"id" (the chat's id)`},
		{"control character in id", "POST", "/ai/chat", "application/json", `{"id":"a\u0001b","messages":[` + msg("user", "q") + `]}`, 400, `"id" (the chat's id)`},
		{"bad trigger", "POST", "/ai/chat", "application/json", `{"id":"c","trigger":"resume-stream","messages":[` + msg("user", "q") + `]}`, 400, `"trigger"`},
		{"no messages", "POST", "/ai/chat", "application/json", `{"id":"c","messages":[]}`, 400, `"messages" is required`},
		{"bad role", "POST", "/ai/chat", "application/json", `{"id":"c","messages":[` + msg("tool", "q") + `]}`, 400, `unknown role "tool"`},
		{"file part", "POST", "/ai/chat", "application/json", `{"id":"c","messages":[{"role":"user","parts":[{"type":"file","url":"data:,x","mediaType":"text/plain"}]}]}`, 400, `"file" parts are not supported`},
		{"part without type", "POST", "/ai/chat", "application/json", `{"id":"c","messages":[{"role":"user","parts":[{"text":"x"}]}]}`, 400, `missing "type"`},
		{"empty user message", "POST", "/ai/chat", "application/json", `{"id":"c","messages":[` + msg("user", " ") + `]}`, 400, `empty "content"`},
		{"no user message", "POST", "/ai/chat", "application/json", `{"id":"c","messages":[` + msg("system", "s") + `]}`, 400, `no message with "role": "user"`},
		{"too many messages", "POST", "/ai/chat", "application/json", `{"id":"c","messages":[` + strings.Repeat(msg("user", "q")+",", 3) + msg("user", "q") + `]}`, 413, "too many messages"},
		{"unknown model", "POST", "/ai/chat", "application/json", `{"id":"c","model":"gpt-9","messages":[` + msg("user", "q") + `]}`, 400, `model "gpt-9" is not available`},
		{"too large", "POST", "/ai/chat", "application/json", `{"id":"c","messages":[` + msg("user", strings.Repeat("x", 300<<10)) + `]}`, 413, "request body over"},
		{"GET /ai/chat", "GET", "/ai/chat", "", "", 405, "use POST"},
		{"POST stream", "POST", "/ai/chat/c/stream", "", "", 405, "use GET"},
		{"GET stop", "GET", "/ai/chat/c/stop", "", "", 405, "use POST"},
		{"stop with malformed JSON", "POST", "/ai/chat/c/stop", "application/json", `{"activeStreamId":`, 400, "malformed JSON"},
		{"stop with unknown field", "POST", "/ai/chat/c/stop", "application/json", `{"streamId":"x"}`, 400, "malformed JSON"},
		{"stop with a text body", "POST", "/ai/chat/c/stop", "text/plain", `x`, 415, "send application/json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, body)
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Error string `json:"error"`
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error, tt.want) {
				t.Fatalf("%d %s; want %d with an error containing %q", resp.StatusCode, b, tt.status, tt.want)
			}
		})
	}
	if up.Calls() != 0 {
		t.Fatalf("a refused request reached the upstream (%d calls)", up.Calls())
	}
}

// With a key configured, the endpoints need what Herald's own chat
// endpoints need: a token that may subscribe to the answer's topic. A
// resume of a chat without an answer is refused the same way, so that it
// tells nothing about the chat.
func TestAccessFollowsTheChatService(t *testing.T) {
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
	up, release := gated(t, 20, 5)
	srv := start(t, up, func(c *config.Server) { c.Auth.JWT.Key = secret })
	do := func(method, path, body, tok string) int {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, srv.URL+path, rd)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good, other := token("chat/*"), token("news")
	for _, tt := range []struct {
		method, path, body, tok string
		status                  int
	}{
		{"POST", "/ai/chat", uiBody("c", "q"), "", 401},
		{"POST", "/ai/chat", uiBody("c", "q"), other, 403},
		{"GET", "/ai/chat/none/stream", "", "", 401},
		{"GET", "/ai/chat/none/stream", "", other, 403},
		{"GET", "/ai/chat/none/stream", "", good, 204},
		{"POST", "/ai/chat/none/stop", "", "", 401},
	} {
		if got := do(tt.method, tt.path, tt.body, tt.tok); got != tt.status {
			t.Errorf("%s %s with token %v: %d, want %d", tt.method, tt.path, tt.tok != "", got, tt.status)
		}
	}
	if up.Calls() != 0 {
		t.Fatal("a refused request reached the upstream")
	}
	// An answer started with a good token: others may neither watch nor
	// stop it.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/ai/chat", strings.NewReader(uiBody("c", "q")))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+good)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST with a good token: %d", resp.StatusCode)
	}
	for _, tt := range []struct {
		method, path, tok string
		status            int
	}{
		{"GET", "/ai/chat/c/stream", other, 403},
		{"POST", "/ai/chat/c/stop", other, 403},
		{"POST", "/ai/chat/c/stop", good, 200},
	} {
		if got := do(tt.method, tt.path, "", tt.tok); got != tt.status {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, got, tt.status)
		}
	}
	release()
	io.Copy(io.Discard, resp.Body)
}
