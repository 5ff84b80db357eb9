package openai_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldpush/herald/internal/llm"
	"github.com/heraldpush/herald/internal/llm/openai"
	"github.com/heraldpush/herald/internal/llm/openaitest"
	"github.com/heraldpush/herald/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var tricky = []string{"Hello", ",", " world", "!\n\n", "  two  spaces", "\n", "data: not a field", "\n\nevent: x\n", "üñí©ødé", " 😀", " ", "end."}

func provider(t *testing.T, baseURL string, timeout time.Duration) *openai.Provider {
	t.Helper()
	p, err := openai.New(openai.Options{BaseURL: baseURL, APIKey: "sk-test", Model: "fake-model", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

type result struct {
	text   string
	chunks int
	finish string
	usage  *llm.Usage
	err    error
}

func run(ctx context.Context, p *openai.Provider, req llm.Request) result {
	var r result
	var b strings.Builder
	for c, err := range p.Stream(ctx, req) {
		if err != nil {
			r.err = err
			break
		}
		if c.Text != "" {
			r.chunks++
			b.WriteString(c.Text)
		}
		if c.FinishReason != "" {
			r.finish = c.FinishReason
		}
		if c.Usage != nil {
			r.usage = c.Usage
		}
	}
	r.text = b.String()
	return r
}

var question = llm.Request{Messages: []llm.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi"}}, MaxTokens: 77}

func TestStreamsAnAnswer(t *testing.T) {
	for _, split := range []bool{false, true} {
		name := "whole writes"
		if split {
			name = "split writes, CRLF"
		}
		t.Run(name, func(t *testing.T) {
			usage := &llm.Usage{PromptTokens: 9, CompletionTokens: len(tricky), TotalTokens: 9 + len(tricky)}
			up := openaitest.New(t, openaitest.Script{Tokens: tricky, Usage: usage, SplitWrites: split})
			r := run(context.Background(), provider(t, up.BaseURL(), time.Second), question)
			if r.err != nil {
				t.Fatal(r.err)
			}
			if want := strings.Join(tricky, ""); r.text != want {
				t.Fatalf("text = %q, want %q", r.text, want)
			}
			if r.chunks != len(tricky) || r.finish != "stop" || r.usage == nil || *r.usage != *usage {
				t.Fatalf("chunks=%d finish=%q usage=%+v", r.chunks, r.finish, r.usage)
			}
			reqs := up.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			got := reqs[0]
			if got.Model != "fake-model" || !got.Stream || got.MaxTokens != 77 || got.StreamOptions == nil || !got.StreamOptions.IncludeUsage ||
				got.Authorization != "Bearer sk-test" || len(got.Messages) != 2 || got.Messages[1].Content != "hi" {
				t.Fatalf("upstream got %+v", got)
			}
		})
	}
}

func TestRequestModel(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: []string{"x"}})
	req := question
	req.Model = "other"
	if r := run(context.Background(), provider(t, up.BaseURL(), time.Second), req); r.err != nil {
		t.Fatal(r.err)
	}
	if m := up.Requests()[0].Model; m != "other" {
		t.Fatalf("model = %q, want other", m)
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name     string
		script   openaitest.Script
		timeout  time.Duration
		wantText string
		wantErr  string
	}{
		{"unauthorized", openaitest.Script{Status: 401, ErrorBody: `{"error":{"message":"Incorrect API key provided: sk-****","type":"invalid_request_error","code":"invalid_api_key"}}`}, time.Second, "", "401 Unauthorized: Incorrect API key provided"},
		{"model not found (ollama)", openaitest.Script{Status: 404, ErrorBody: `{"error":{"message":"model \"llama9\" not found, try pulling it first","type":"api_error"}}`}, time.Second, "", `model "llama9" not found`},
		{"plain text error", openaitest.Script{Status: 502, ErrorBody: "Bad Gateway"}, time.Second, "", "502 Bad Gateway: Bad Gateway"},
		{"error chunk mid-stream", openaitest.Script{Tokens: tricky, Fail: openaitest.ErrorChunk, FailAfter: 3, ErrorMessage: "The server is overloaded"}, time.Second, "Hello, world", "upstream error: The server is overloaded"},
		{"malformed chunk", openaitest.Script{Tokens: tricky, Fail: openaitest.Malformed, FailAfter: 2}, time.Second, "Hello,", "malformed chunk"},
		{"connection dropped", openaitest.Script{Tokens: tricky, Fail: openaitest.Drop, FailAfter: 2}, time.Second, "Hello,", "reading the stream"},
		{"truncated stream", openaitest.Script{Tokens: tricky, Fail: openaitest.Truncate, FailAfter: 2}, time.Second, "Hello,", "ended before the answer was finished"},
		{"never answers", openaitest.Script{Tokens: tricky, Fail: openaitest.Hang}, 200 * time.Millisecond, "", "did not answer within 200ms"},
		{"goes quiet", openaitest.Script{Tokens: tricky, Fail: openaitest.Hang, FailAfter: 4}, 200 * time.Millisecond, "Hello, world!\n\n", "sent nothing for 200ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := openaitest.New(t, tt.script)
			start := time.Now()
			r := run(context.Background(), provider(t, up.BaseURL(), tt.timeout), question)
			if r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", r.err, tt.wantErr)
			}
			if !errors.Is(r.err, llm.ErrUpstream) {
				t.Fatalf("err = %v does not wrap llm.ErrUpstream", r.err)
			}
			if strings.Contains(r.err.Error(), "sk-test") {
				t.Fatalf("the error leaks the API key: %v", r.err)
			}
			if r.text != tt.wantText {
				t.Fatalf("text before the failure = %q, want %q", r.text, tt.wantText)
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("took %s: something hung", time.Since(start))
			}
		})
	}
}

func TestNotAStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"x","object":"chat.completion","choices":[]}`))
	}))
	defer srv.Close()
	r := run(context.Background(), provider(t, srv.URL, time.Second), question)
	if r.err == nil || !strings.Contains(r.err.Error(), "instead of a text/event-stream") {
		t.Fatalf("err = %v", r.err)
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	r := run(context.Background(), provider(t, url, time.Second), question)
	if r.err == nil || !strings.Contains(r.err.Error(), "cannot reach") {
		t.Fatalf("err = %v", r.err)
	}
}

func TestCancelAbortsTheUpstream(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: tricky, Fail: openaitest.Hang, FailAfter: 3})
	cause := errors.New("user pressed stop")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	p := provider(t, up.BaseURL(), time.Minute)
	var r result
	for c, err := range p.Stream(ctx, question) {
		if err != nil {
			r.err = err
			break
		}
		if r.text += c.Text; r.text == "Hello, world" {
			cancel(cause)
		}
	}
	if !errors.Is(r.err, cause) {
		t.Fatalf("err = %v, want the cancel cause", r.err)
	}
	testkit.WaitWithin(t, 5*time.Second, "the upstream request to be aborted", func() bool { return up.Aborted() == 1 })
}

func TestBreakAbortsTheUpstream(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: tricky, Delay: 20 * time.Millisecond})
	p := provider(t, up.BaseURL(), time.Minute)
	for c, err := range p.Stream(context.Background(), question) {
		if err != nil || c.Text != "" {
			break
		}
	}
	testkit.WaitWithin(t, 5*time.Second, "the upstream request to be aborted", func() bool { return up.Aborted() == 1 })
}

func TestMaxTokensField(t *testing.T) {
	for _, field := range []string{"max_tokens", "max_completion_tokens", "none"} {
		up := openaitest.New(t, openaitest.Script{Tokens: []string{"x"}})
		p, err := openai.New(openai.Options{BaseURL: up.BaseURL(), Model: "m", MaxTokensField: field})
		if err != nil {
			t.Fatal(err)
		}
		if r := run(context.Background(), p, question); r.err != nil {
			t.Fatal(r.err)
		}
		p.Close()
		got := up.Requests()[0]
		want := map[string][2]int{"max_tokens": {77, 0}, "max_completion_tokens": {0, 77}, "none": {0, 0}}[field]
		if got.MaxTokens != want[0] || got.MaxCompletionTokens != want[1] {
			t.Errorf("%s: upstream got max_tokens %d, max_completion_tokens %d", field, got.MaxTokens, got.MaxCompletionTokens)
		}
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []openai.Options{
		{BaseURL: "", Model: "m"},
		{BaseURL: "ftp://x/v1", Model: "m"},
		{BaseURL: "localhost:11434", Model: "m"},
		{BaseURL: "http://localhost:11434/v1"},
		{BaseURL: "http://localhost:11434/v1", Model: "m", MaxTokensField: "max_length"},
	} {
		if _, err := openai.New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}
