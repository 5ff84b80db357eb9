package chat_test

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/llm/openaitest"
	"github.com/heraldpush/herald/internal/testkit"
)

// Upstream failures end the stream with an error event that says what went
// wrong and keeps the partial answer; nothing hangs.
func TestUpstreamFailuresBecomeErrorEvents(t *testing.T) {
	toks := tokens(40)
	tests := []struct {
		name    string
		script  openaitest.Script
		wantMsg string
		partial int // tokens before the failure
		aborted bool
	}{
		{"error status", openaitest.Script{Status: 401, ErrorBody: `{"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}}`}, "401 Unauthorized: Incorrect API key provided", 0, false},
		{"server error", openaitest.Script{Status: 500, ErrorBody: `{"error":"boom"}`}, "500 Internal Server Error: boom", 0, false},
		{"error mid-stream", openaitest.Script{Tokens: toks, Fail: openaitest.ErrorChunk, FailAfter: 7, ErrorMessage: "The model is overloaded"}, "upstream error: The model is overloaded", 7, false},
		{"connection dropped mid-stream", openaitest.Script{Tokens: toks, Fail: openaitest.Drop, FailAfter: 5}, "reading the stream", 5, false},
		{"malformed chunk", openaitest.Script{Tokens: toks, Fail: openaitest.Malformed, FailAfter: 3}, "malformed chunk", 3, false},
		{"truncated stream", openaitest.Script{Tokens: toks, Fail: openaitest.Truncate, FailAfter: 4}, "ended before the answer was finished", 4, false},
		{"never answers", openaitest.Script{Tokens: toks, Fail: openaitest.Hang}, "did not answer within 300ms", 0, true},
		{"goes quiet mid-stream", openaitest.Script{Tokens: toks, Fail: openaitest.Hang, FailAfter: 6}, "sent nothing for 300ms", 6, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := openaitest.New(t, tt.script)
			srv := start(t, up, func(c *config.Server) { c.Chat.LLMTimeout = 300 * time.Millisecond })
			id := ask(t, srv, "q")
			s := finish(t, srv.URL, id)
			if s.fail == nil {
				t.Fatalf("done %+v, want an error event", s.done)
			}
			if !strings.Contains(s.fail.Message, tt.wantMsg) {
				t.Fatalf("error message %q, want it to contain %q", s.fail.Message, tt.wantMsg)
			}
			if strings.Contains(s.fail.Message, "sk-test") {
				t.Fatal("the error message leaks the API key")
			}
			want := strings.Join(toks[:tt.partial], "")
			if s.fail.Text != want || s.fail.Tokens != tt.partial {
				t.Fatalf("partial answer %q (%d tokens), want %q", s.fail.Text, s.fail.Tokens, want)
			}
			// A watcher that read the partial tokens gets them too.
			all := follow(t, srv.URL, id, startOf(t, srv.URL, id), 0)
			if all.text() != want || all.fail == nil {
				t.Fatalf("tokens %q, want %q then the error", all.text(), want)
			}
			if r := follow(t, srv.URL, id, all.finalID, 0); r.status != 204 {
				t.Fatalf("reconnect after the error: %d, want 204", r.status)
			}
			if tt.aborted {
				testkit.WaitFor(t, "upstream request abandoned", func() bool { return up.Aborted() == 1 })
			}
			if up.Calls() != 1 {
				t.Fatalf("%d upstream calls: a failure must not be retried behind the client's back", up.Calls())
			}
		})
	}
}

func TestMaxTokensCutsTheAnswer(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: tokens(100), Delay: time.Millisecond})
	srv := start(t, up, func(c *config.Server) { c.Chat.MaxTokens = 25 })
	id := ask(t, srv, "q")
	s := finish(t, srv.URL, id)
	if s.done == nil || s.done.FinishReason != "length" || s.done.Tokens != 25 || s.done.Text != strings.Join(tokens(25), "") {
		t.Fatalf("done = %+v, want 25 tokens and finish length", s.done)
	}
	if got := up.Requests()[0].MaxTokens; got != 25 {
		t.Fatalf("upstream asked for max_tokens %d, want 25", got)
	}
	testkit.WaitFor(t, "upstream request abandoned", func() bool { return up.Aborted() == 1 })
}

func TestMaxDuration(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: tokens(100), Delay: 20 * time.Millisecond})
	srv := start(t, up, func(c *config.Server) { c.Chat.MaxDuration = 200 * time.Millisecond })
	s := finish(t, srv.URL, ask(t, srv, "q"))
	if s.fail == nil || !strings.Contains(s.fail.Message, "longer than 200ms") || s.fail.Tokens == 0 {
		t.Fatalf("got %+v / %+v, want an error after some tokens", s.done, s.fail)
	}
}

// Shutting down interrupts running generations: the upstream request is
// cancelled, no goroutine is left (TestMain checks), and shutdown is quick.
func TestShutdownInterruptsGenerations(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: tokens(50), Fail: openaitest.Hang, FailAfter: 3})
	srv := start(t, up, nil)
	id := ask(t, srv, "q")
	follow(t, srv.URL, id, "", 3)
	begin := time.Now()
	srv.Stop()
	if d := time.Since(begin); d > 5*time.Second {
		t.Fatalf("shutdown took %s", d)
	}
	testkit.WaitFor(t, "upstream request cancelled", func() bool { return up.Aborted() == 1 })
}
