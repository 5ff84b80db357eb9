// Package demo is Herald's built-in offline model. It needs no network and
// no API key: it composes a plausible answer from the question and streams
// it token by token with a realistic delay, so that `herald serve` shows
// resumable AI streaming out of the box. The same question always gets the
// same answer, which makes it easy to test.
package demo

import (
	"context"
	"fmt"
	"hash/fnv"
	"iter"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/heraldpush/herald/internal/llm"
)

// ModelName is the demo model's name.
const ModelName = "herald-demo"

// Options configure a Provider. The zero value is valid.
type Options struct {
	// Delay is the mean time between two tokens. Each token waits between
	// 0.5 and 1.5 times it (deterministically), like a real model whose
	// pace varies. Zero streams without waiting.
	Delay time.Duration
}

// Provider is the demo model. Create it with New.
type Provider struct {
	delay time.Duration
}

var _ llm.Provider = (*Provider)(nil)

// New returns the demo model.
func New(opts *Options) *Provider {
	var o Options
	if opts != nil {
		o = *opts
	}
	return &Provider{delay: max(o.Delay, 0)}
}

// Name returns "demo".
func (p *Provider) Name() string { return "demo" }

// Model returns ModelName.
func (p *Provider) Model() string { return ModelName }

// Stream streams the answer to req's last user message, one token at a
// time. It ends with finish reason "stop", or "length" after MaxTokens
// tokens, and reports usage counted in demo tokens.
func (p *Provider) Stream(ctx context.Context, req llm.Request) iter.Seq2[llm.Chunk, error] {
	return func(yield func(llm.Chunk, error) bool) {
		if req.Model != "" && req.Model != ModelName {
			yield(llm.Chunk{}, fmt.Errorf("%w: the demo model is %q, not %q", llm.ErrUpstream, ModelName, req.Model))
			return
		}
		tokens := Tokens(Answer(req.Messages))
		prompt := 0
		for _, m := range req.Messages {
			prompt += len(Tokens(m.Content))
		}
		finish := "stop"
		if req.MaxTokens > 0 && len(tokens) > req.MaxTokens {
			tokens, finish = tokens[:req.MaxTokens], "length"
		}
		var timer *time.Timer
		if p.delay > 0 {
			timer = time.NewTimer(time.Hour)
			defer timer.Stop()
		}
		for i, tok := range tokens {
			if timer != nil {
				timer.Reset(p.pause(i))
				select {
				case <-ctx.Done():
					yield(llm.Chunk{}, context.Cause(ctx))
					return
				case <-timer.C:
				}
			} else if err := ctx.Err(); err != nil {
				yield(llm.Chunk{}, context.Cause(ctx))
				return
			}
			if !yield(llm.Chunk{Text: tok}, nil) {
				return
			}
		}
		yield(llm.Chunk{FinishReason: finish, Usage: &llm.Usage{PromptTokens: prompt, CompletionTokens: len(tokens), TotalTokens: prompt + len(tokens)}}, nil)
	}
}

// pause is the wait before token i: between 0.5 and 1.5 times the delay.
func (p *Provider) pause(i int) time.Duration {
	x := uint32(i)*2654435761 + 12345 // Knuth's multiplicative hash
	f := 0.5 + float64(x%1000)/1000
	return time.Duration(float64(p.delay) * f)
}

// Answer returns the demo model's answer to a conversation: it answers the
// last user message.
func Answer(msgs []llm.Message) string {
	question := ""
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == llm.RoleUser {
			question = strings.TrimSpace(msgs[i].Content)
			break
		}
	}
	if question == "" {
		return "Hello! Ask me anything — I'm Herald's demo model, and I'll stream you an answer token by token."
	}
	h := fnv.New32a()
	h.Write([]byte(question))
	seed := h.Sum32()

	var b strings.Builder
	fmt.Fprintf(&b, "%s You asked: “%s”\n\n", pick(openings, seed), quote(question))
	b.WriteString("I'm Herald's built-in demo model. I run offline inside the server and I don't really understand questions, but I stream exactly like a real one: every word you see arrived as its own `token` event over Server-Sent Events.\n\n")
	fmt.Fprintf(&b, "%s\n\n", pick(middles, seed>>8))
	b.WriteString("Here is what happens while you read this:\n")
	b.WriteString("- the generation runs on the server, detached from your connection;\n")
	b.WriteString("- each token is stored in Herald's history with an id;\n")
	b.WriteString("- if your connection drops, your browser reconnects with `Last-Event-ID` and gets exactly the tokens it missed.\n\n")
	fmt.Fprintf(&b, "%s\n\n", pick(tips, seed>>16))
	b.WriteString(pick(closings, seed>>24))
	return b.String()
}

// quote shortens q to a quotable length and flattens its line breaks.
func quote(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	const max = 120
	if utf8.RuneCountInString(q) <= max {
		return q
	}
	r := []rune(q)
	return strings.TrimSpace(string(r[:max])) + "…"
}

func pick(list []string, seed uint32) string { return list[int(seed%uint32(len(list)))] }

var openings = []string{
	"Great question!",
	"Let me think about that.",
	"Good one.",
	"Happy to help.",
}

var middles = []string{
	"Try it now: reload this page, or switch your network off for a few seconds and back on. The answer carries on from the last token you saw, and the model is not asked again — it never even noticed you were gone.",
	"If you open this page in a second tab, both tabs follow the same answer at once. A client that joins after the end gets the whole answer in one `done` event instead of a replay of every token.",
	"A real deployment points Herald at an OpenAI-compatible server (OpenAI, Ollama, vLLM, llama.cpp) with `--llm-base-url`; the streaming, the resume and the Stop button work the same way.",
}

var tips = []string{
	"Press Stop at any time: the generation ends, the partial answer is kept, and the stream closes with `\"stopped\": true`.",
	"With a durable history store, even a server restart does not lose a finished answer.",
	"Tokens may contain spaces,  double spaces and line breaks;\nthey arrive exactly as the model produced them.",
}

var closings = []string{
	"Anything else you would like to know?",
	"I hope that helps!",
	"That's all from the demo model — ask another question to see it again.",
}

// Tokens splits text into the tokens the demo model streams, in the style of
// real tokenizers: a word with its leading spaces, a single punctuation
// character, or a run of line breaks. Joining the tokens gives text back.
func Tokens(text string) []string {
	var out []string
	for len(text) > 0 {
		n := tokenLen(text)
		out = append(out, text[:n])
		text = text[n:]
	}
	return out
}

func tokenLen(s string) int {
	if s[0] == '\n' {
		n := 1
		for n < len(s) && s[n] == '\n' {
			n++
		}
		return n
	}
	i := 0
	for i < len(s) && s[i] == ' ' {
		i++
	}
	if i == len(s) {
		return i
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	if !isWord(r) {
		if i > 0 && s[i] == '\n' {
			return i // spaces before a line break are a token of their own
		}
		return i + size
	}
	j := i + size
	for j < len(s) {
		r, size := utf8.DecodeRuneInString(s[j:])
		if !isWord(r) {
			break
		}
		j += size
	}
	return j
}

func isWord(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\''
}
