// Package openaitest is a fake OpenAI-compatible chat completions server for
// tests. It speaks the real streaming wire format — a text/event-stream of
// chat.completion.chunk objects, a usage chunk, then "data: [DONE]" — and can
// fail in the ways real upstreams do: an error status, an error object in
// the middle of the stream, a malformed chunk, a dropped connection, or no
// answer at all. It counts the requests it gets.
package openaitest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/llm"
)

// Failure is a way the fake upstream fails.
type Failure int

// The failures a Script may ask for. Each happens after Script.FailAfter
// tokens.
const (
	// Succeed: no failure.
	Succeed Failure = iota
	// Hang: stop sending (the connection stays open) until the client
	// gives up.
	Hang
	// ErrorChunk: send {"error": {...}} as a chunk, then end the stream.
	ErrorChunk
	// Malformed: send a chunk that is not valid JSON.
	Malformed
	// Drop: close the connection abruptly, in the middle of the stream.
	Drop
	// Truncate: end the response cleanly, but with no finish_reason and no
	// [DONE].
	Truncate
)

// Script is what the fake upstream answers.
type Script struct {
	// Tokens are the content deltas, one chunk each.
	Tokens []string
	// N and Token, when Token is set, generate N tokens at send time
	// instead of Tokens (e.g. a timestamp for latency measurements).
	N     int
	Token func(i int) string
	// Delay is the wait before each chunk.
	Delay time.Duration
	// Ready, if set, is called after the response headers and before the
	// first token; the stream waits until it returns.
	Ready func()
	// FinishReason of the last chunk; default "stop".
	FinishReason string
	// Usage, when set, is sent in a last chunk with no choices, as OpenAI
	// does when the request asks for stream_options.include_usage.
	Usage *llm.Usage
	// Status, when set, answers the request with this status and
	// ErrorBody instead of a stream.
	Status    int
	ErrorBody string
	// Fail makes the stream fail after FailAfter tokens.
	Fail      Failure
	FailAfter int
	// ErrorMessage is the message of an ErrorChunk.
	ErrorMessage string
	// SplitWrites writes each event in two halves, flushed separately, and
	// ends its lines with CRLF, to exercise stream parsers.
	SplitWrites bool
}

// Text is the answer the script streams when it succeeds.
func (s *Script) Text() string {
	var b strings.Builder
	for i := range s.count() {
		b.WriteString(s.token(i))
	}
	return b.String()
}

func (s *Script) count() int {
	if s.Token != nil {
		return s.N
	}
	return len(s.Tokens)
}

func (s *Script) token(i int) string {
	if s.Token != nil {
		return s.Token(i)
	}
	return s.Tokens[i]
}

// Request is a chat completions request as the fake upstream received it.
type Request struct {
	Model     string        `json:"model"`
	Messages  []llm.Message `json:"messages"`
	Stream    bool          `json:"stream"`
	MaxTokens int           `json:"max_tokens"`
	// MaxCompletionTokens is max_completion_tokens (OpenAI's newer name).
	MaxCompletionTokens int `json:"max_completion_tokens"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	// Authorization is the request's Authorization header.
	Authorization string `json:"-"`
}

// Server is a running fake upstream.
type Server struct {
	*httptest.Server

	script    Script
	calls     atomic.Int64
	aborted   atomic.Int64
	completed atomic.Int64
	mu        sync.Mutex
	requests  []Request
}

// New starts a fake upstream that answers every request with script. It is
// closed when the test ends.
func New(t testing.TB, script Script) *Server {
	t.Helper()
	s := &Server{script: script}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.serve)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(func() {
		s.CloseClientConnections()
		s.Close()
	})
	return s
}

// BaseURL is the API root to configure a client with (".../v1").
func (s *Server) BaseURL() string { return s.URL + "/v1" }

// Calls returns how many chat completion requests the server got.
func (s *Server) Calls() int { return int(s.calls.Load()) }

// Aborted returns how many requests the client gave up on (cancelled or
// disconnected) before the server had sent all it meant to.
func (s *Server) Aborted() int { return int(s.aborted.Load()) }

// Completed returns how many responses were sent to the end.
func (s *Server) Completed() int { return int(s.completed.Load()) }

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	var req Request
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, `{"error":{"message":"bad JSON"}}`, http.StatusBadRequest)
		return
	}
	req.Authorization = r.Header.Get("Authorization")
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()

	sc := &s.script
	if sc.Status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(sc.Status)
		io.WriteString(w, sc.ErrorBody)
		s.completed.Add(1)
		return
	}
	if !req.Stream {
		http.Error(w, `{"error":{"message":"this fake only streams"}}`, http.StatusBadRequest)
		return
	}
	model := req.Model
	ctx := r.Context()
	if sc.Fail == Hang && sc.FailAfter == 0 {
		<-ctx.Done() // never answer
		s.aborted.Add(1)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()

	id := fmt.Sprintf("chatcmpl-fake%d", s.calls.Load())
	created := time.Now().Unix()
	send := func(payload string) bool {
		ev := "data: " + payload + "\n\n"
		if sc.SplitWrites {
			ev = strings.ReplaceAll(ev, "\n", "\r\n")
			half := len(ev) / 2
			if _, err := io.WriteString(w, ev[:half]); err != nil || rc.Flush() != nil {
				return false
			}
			ev = ev[half:]
		}
		if _, err := io.WriteString(w, ev); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	chunk := func(delta map[string]any, finish any, usage any) string {
		c := map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"system_fingerprint": "fp_fake",
			"choices":            []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}},
		}
		if usage != nil {
			c["choices"] = []any{}
		}
		if sc.Usage != nil {
			c["usage"] = usage
		}
		b, _ := json.Marshal(c)
		return string(b)
	}
	wait := func() bool {
		if sc.Delay <= 0 {
			return ctx.Err() == nil
		}
		t := time.NewTimer(sc.Delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	abort := func() { s.aborted.Add(1) }

	if !send(chunk(map[string]any{"role": "assistant", "content": ""}, nil, nil)) {
		abort()
		return
	}
	if sc.Ready != nil {
		sc.Ready()
	}
	n := sc.count()
	for i := 0; i <= n; i++ {
		if sc.Fail != Succeed && i == sc.FailAfter {
			switch sc.Fail {
			case Hang:
				<-ctx.Done()
				abort()
			case ErrorChunk:
				msg := sc.ErrorMessage
				if msg == "" {
					msg = "The server had an error while processing your request."
				}
				b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "server_error", "code": nil}})
				send(string(b))
				s.completed.Add(1)
			case Malformed:
				send(`{"id":"` + id + `","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"oops`)
				s.completed.Add(1)
			case Drop:
				if hj, ok := w.(http.Hijacker); ok {
					if conn, _, err := hj.Hijack(); err == nil {
						conn.Close()
					}
				}
				s.completed.Add(1)
			case Truncate:
				s.completed.Add(1)
			}
			return
		}
		if i == n {
			break
		}
		if !wait() {
			abort()
			return
		}
		if !send(chunk(map[string]any{"content": sc.token(i)}, nil, nil)) {
			abort()
			return
		}
	}
	finish := sc.FinishReason
	if finish == "" {
		finish = "stop"
	}
	if !send(chunk(map[string]any{}, finish, nil)) {
		abort()
		return
	}
	if u := sc.Usage; u != nil {
		if !send(chunk(nil, nil, map[string]int{"prompt_tokens": u.PromptTokens, "completion_tokens": u.CompletionTokens, "total_tokens": u.TotalTokens})) {
			abort()
			return
		}
	}
	if !send("[DONE]") {
		abort()
		return
	}
	s.completed.Add(1)
}

// Script returns the server's script.
func (s *Server) Script() *Script { return &s.script }
