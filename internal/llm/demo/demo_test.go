package demo_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldpush/herald/internal/llm"
	"github.com/heraldpush/herald/internal/llm/demo"
)

func ask(q string) []llm.Message { return []llm.Message{{Role: llm.RoleUser, Content: q}} }

func collect(t *testing.T, p *demo.Provider, ctx context.Context, req llm.Request) (string, int, llm.Chunk, error) {
	t.Helper()
	var b strings.Builder
	n := 0
	var last llm.Chunk
	for c, err := range p.Stream(ctx, req) {
		if err != nil {
			return b.String(), n, last, err
		}
		if c.Text != "" {
			n++
			b.WriteString(c.Text)
		}
		last = c
	}
	return b.String(), n, last, nil
}

func TestStreamsTheAnswerTokenByToken(t *testing.T) {
	p := demo.New(nil)
	msgs := ask("What is Herald?")
	text, n, last, err := collect(t, p, context.Background(), llm.Request{Messages: msgs})
	if err != nil {
		t.Fatal(err)
	}
	want := demo.Answer(msgs)
	if text != want {
		t.Fatalf("streamed text differs from Answer:\n%q\n%q", text, want)
	}
	if n != len(demo.Tokens(want)) || n < 100 {
		t.Fatalf("%d tokens, want %d (and a plausible length)", n, len(demo.Tokens(want)))
	}
	if last.FinishReason != "stop" || last.Usage == nil || last.Usage.CompletionTokens != n {
		t.Fatalf("last chunk = %+v, want finish stop and usage of %d tokens", last, n)
	}
	if !strings.Contains(want, "What is Herald?") || !strings.Contains(want, "\n\n") || !strings.Contains(want, "  ") {
		t.Fatalf("answer should quote the question and hold line breaks and double spaces: %q", want)
	}
}

func TestAnswerIsDeterministicAndVaries(t *testing.T) {
	a1, a2 := demo.Answer(ask("one")), demo.Answer(ask("one"))
	if a1 != a2 {
		t.Fatal("same question, different answers")
	}
	distinct := map[string]bool{}
	for _, q := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		distinct[demo.Answer(ask(q))[:20]] = true
	}
	if len(distinct) < 2 {
		t.Fatal("every question starts the same way")
	}
}

func TestTokensJoinBack(t *testing.T) {
	for _, s := range []string{"", "a", "Hello, world!\n\n  two  spaces \nend", "“quoted” — dash", "   ", "\n\n\n", "x \n y"} {
		toks := demo.Tokens(s)
		if strings.Join(toks, "") != s {
			t.Errorf("Tokens(%q) = %q: does not join back", s, toks)
		}
		for _, tok := range toks {
			if tok == "" {
				t.Errorf("Tokens(%q) has an empty token", s)
			}
		}
	}
}

func TestMaxTokens(t *testing.T) {
	p := demo.New(nil)
	_, n, last, err := collect(t, p, context.Background(), llm.Request{Messages: ask("q"), MaxTokens: 7})
	if err != nil || n != 7 || last.FinishReason != "length" {
		t.Fatalf("n=%d finish=%q err=%v, want 7 tokens and finish length", n, last.FinishReason, err)
	}
}

func TestDelayAndCancel(t *testing.T) {
	// Fake time: 150ms at 20ms a token is 7 tokens, however busy the
	// machine is.
	synctest.Test(t, func(t *testing.T) {
		p := demo.New(&demo.Options{Delay: 20 * time.Millisecond})
		cause := errors.New("stop now")
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(150*time.Millisecond, func() { cancel(cause) })
		start := time.Now()
		_, n, _, err := collect(t, p, ctx, llm.Request{Messages: ask("q")})
		if !errors.Is(err, cause) {
			t.Fatalf("err = %v, want the context's cause", err)
		}
		if n < 7 || n > 8 || time.Since(start) != 150*time.Millisecond {
			t.Fatalf("%d tokens in %s: want 7 or 8 in 150ms, a token every 20ms until the cancel", n, time.Since(start))
		}
	})
}

func TestUnknownModel(t *testing.T) {
	_, _, _, err := collect(t, demo.New(nil), context.Background(), llm.Request{Model: "gpt-9", Messages: ask("q")})
	if !errors.Is(err, llm.ErrUpstream) || !strings.Contains(err.Error(), "gpt-9") {
		t.Fatalf("err = %v, want an upstream error naming the model", err)
	}
}
