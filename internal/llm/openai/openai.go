// Package openai streams answers from any server that speaks the OpenAI
// chat completions API with "stream": true: OpenAI itself, Ollama, vLLM,
// the llama.cpp server, OpenRouter and others. The response, a
// text/event-stream of chat.completion.chunk objects ending with
// "data: [DONE]", is parsed with Herald's own sse package.
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/heraldpush/herald/internal/llm"
	"github.com/heraldpush/herald/sse"
)

// DefaultTimeout is the default for Options.Timeout.
const DefaultTimeout = 60 * time.Second

// Options configure a Provider.
type Options struct {
	// BaseURL is the API root, e.g. "https://api.openai.com/v1" or
	// "http://localhost:11434/v1" (Ollama). Requests go to
	// BaseURL + "/chat/completions". Required.
	BaseURL string
	// APIKey, if set, is sent as "Authorization: Bearer <key>".
	APIKey string
	// Model is used when a request names none. Required.
	Model string
	// Timeout bounds the wait for the response headers and then for each
	// read of the stream: an upstream that goes quiet for longer fails the
	// answer. Default DefaultTimeout.
	Timeout time.Duration
	// MaxTokensField is the request field that carries the answer's token
	// limit: "max_tokens" (the default, understood by every compatible
	// server), "max_completion_tokens" (required by OpenAI's reasoning
	// models) or "none" (not sent; the chat service still cuts the answer
	// off at its limit).
	MaxTokensField string
	// Client sends the requests. Default: a client of its own, with a
	// clone of http.DefaultTransport (so proxy variables apply).
	Client *http.Client
}

// Provider streams chat completions from an OpenAI-compatible server.
// Create it with New; Close it to release idle connections. It is safe for
// concurrent use.
type Provider struct {
	endpoint  string
	apiKey    string
	model     string
	timeout   time.Duration
	maxField  string
	client    *http.Client
	ownClient bool
}

var _ llm.Provider = (*Provider)(nil)

// New returns a Provider for o.
func New(o Options) (*Provider, error) {
	u, err := url.Parse(o.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("openai: base URL %q: want http(s)://host[:port]/path, e.g. https://api.openai.com/v1", o.BaseURL)
	}
	if o.Model == "" {
		return nil, errors.New("openai: no model: set one, e.g. gpt-4o-mini (OpenAI) or llama3.2 (Ollama)")
	}
	switch o.MaxTokensField {
	case "":
		o.MaxTokensField = "max_tokens"
	case "max_tokens", "max_completion_tokens", "none":
	default:
		return nil, fmt.Errorf("openai: max tokens field %q: want max_tokens, max_completion_tokens or none", o.MaxTokensField)
	}
	p := &Provider{
		maxField: o.MaxTokensField,
		endpoint: strings.TrimRight(o.BaseURL, "/") + "/chat/completions",
		apiKey:   o.APIKey,
		model:    o.Model,
		timeout:  o.Timeout,
		client:   o.Client,
	}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	if p.client == nil {
		p.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		p.ownClient = true
	}
	return p, nil
}

// Name returns "openai".
func (p *Provider) Name() string { return "openai" }

// Model returns the default model.
func (p *Provider) Model() string { return p.model }

// Close closes the idle connections of the Provider's own client.
func (p *Provider) Close() error {
	if p.ownClient {
		p.client.CloseIdleConnections()
	}
	return nil
}

// request is the body of a chat completions request.
type request struct {
	Model         string        `json:"model"`
	Messages      []llm.Message `json:"messages"`
	Stream        bool          `json:"stream"`
	StreamOptions streamOptions `json:"stream_options"`
	MaxTokens     int           `json:"max_tokens,omitempty"`
	MaxCompletion int           `json:"max_completion_tokens,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// chunk is one chat.completion.chunk (or an error object sent mid-stream).
type chunk struct {
	Object  string `json:"object"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Content *string `json:"content"`
			Refusal *string `json:"refusal"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// timeoutError is the cancel cause when the upstream stays quiet too long.
type timeoutError struct {
	d       time.Duration
	started bool // the response had begun
}

func (e *timeoutError) Error() string {
	if e.started {
		return fmt.Sprintf("upstream sent nothing for %s (--llm-timeout)", e.d)
	}
	return fmt.Sprintf("upstream did not answer within %s (--llm-timeout)", e.d)
}

func (e *timeoutError) Unwrap() error { return llm.ErrUpstream }

// Stream sends req upstream and yields the answer's chunks.
func (p *Provider) Stream(ctx context.Context, req llm.Request) iter.Seq2[llm.Chunk, error] {
	return func(yield func(llm.Chunk, error) bool) {
		if err := p.stream(ctx, req, yield); err != nil {
			yield(llm.Chunk{}, err)
		}
	}
}

func (p *Provider) stream(parent context.Context, req llm.Request, yield func(llm.Chunk, error) bool) error {
	model := req.Model
	if model == "" {
		model = p.model
	}
	body := request{Model: model, Messages: req.Messages, Stream: true, StreamOptions: streamOptions{IncludeUsage: true}}
	switch p.maxField {
	case "max_tokens":
		body.MaxTokens = req.MaxTokens
	case "max_completion_tokens":
		body.MaxCompletion = req.MaxTokens
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("openai: encode request: %w", err)
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	var started atomic.Bool
	idle := time.AfterFunc(p.timeout, func() { cancel(&timeoutError{d: p.timeout, started: started.Load()}) })
	defer idle.Stop()

	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("openai: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "text/event-stream")
	if p.apiKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+p.apiKey)
	}
	resp, err := p.client.Do(hreq)
	if err != nil {
		return p.failure(ctx, parent, fmt.Errorf("%w: cannot reach %s: %w", llm.ErrUpstream, p.endpoint, unwrapURLError(err)))
	}
	defer resp.Body.Close()
	started.Store(true)
	idle.Reset(p.timeout)
	if resp.StatusCode != http.StatusOK {
		return p.failure(ctx, parent, statusError(resp))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("%w: answered with Content-Type %q instead of a text/event-stream: %s", llm.ErrUpstream, resp.Header.Get("Content-Type"), clip(string(excerpt)))
	}

	finished := false
	for ev, err := range sse.Read(&idleReader{r: resp.Body, t: idle, d: p.timeout}) {
		if err != nil {
			return p.failure(ctx, parent, fmt.Errorf("%w: reading the stream: %w", llm.ErrUpstream, err))
		}
		data := strings.TrimSpace(ev.Data)
		switch {
		case data == "[DONE]":
			return nil
		case data == "":
			continue
		case ev.Type == "error":
			return fmt.Errorf("%w: upstream error: %s", llm.ErrUpstream, errorMessage([]byte(data)))
		}
		var c chunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return fmt.Errorf("%w: malformed chunk (%v): %s", llm.ErrUpstream, err, clip(data))
		}
		if len(c.Error) > 0 && string(c.Error) != "null" {
			return fmt.Errorf("%w: upstream error: %s", llm.ErrUpstream, errorMessage(c.Error))
		}
		var out llm.Chunk
		for _, ch := range c.Choices {
			if ch.Index != 0 {
				continue
			}
			if ch.Delta.Content != nil {
				out.Text += *ch.Delta.Content
			}
			if ch.Delta.Refusal != nil {
				out.Text += *ch.Delta.Refusal
			}
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				out.FinishReason = *ch.FinishReason
				finished = true
			}
		}
		if c.Usage != nil {
			out.Usage = &llm.Usage{PromptTokens: c.Usage.PromptTokens, CompletionTokens: c.Usage.CompletionTokens, TotalTokens: c.Usage.TotalTokens}
		}
		if out == (llm.Chunk{}) {
			continue
		}
		if !yield(out, nil) {
			return nil
		}
	}
	if err := context.Cause(ctx); err != nil {
		return p.failure(ctx, parent, err)
	}
	if !finished {
		return fmt.Errorf("%w: the stream ended before the answer was finished (no finish_reason, no [DONE])", llm.ErrUpstream)
	}
	return nil // a finish_reason without [DONE]: some servers end that way
}

// failure chooses the error to report for err: the parent context's own
// cause when the caller gave up, the timeout when the upstream went quiet.
func (p *Provider) failure(ctx, parent context.Context, err error) error {
	if parent.Err() != nil {
		return context.Cause(parent)
	}
	var te *timeoutError
	if errors.As(context.Cause(ctx), &te) {
		return te
	}
	return err
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// statusError describes a non-200 answer, with the upstream's message.
func statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	msg := errorMessage(b)
	if msg == "" {
		return fmt.Errorf("%w: answered %s", llm.ErrUpstream, resp.Status)
	}
	return fmt.Errorf("%w: answered %s: %s", llm.ErrUpstream, resp.Status, msg)
}

// errorMessage extracts the message of an error body: {"error": {"message":
// ...}}, {"error": "..."}, {"message": ...}, or the text itself.
func errorMessage(b []byte) string {
	b = bytes.TrimSpace(b)
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(b, &v) == nil {
		var s string
		var obj struct {
			Message string `json:"message"`
			Code    any    `json:"code"`
		}
		switch {
		case len(v.Error) > 0 && json.Unmarshal(v.Error, &s) == nil && s != "":
			return clip(s)
		case len(v.Error) > 0 && json.Unmarshal(v.Error, &obj) == nil && obj.Message != "":
			return clip(obj.Message)
		case v.Message != "":
			return clip(v.Message)
		}
	}
	return clip(string(b))
}

// clip shortens s for an error message.
func clip(s string) string {
	s = strings.TrimSpace(s)
	const max = 300
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// idleReader restarts the idle timer whenever the upstream sends bytes.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 {
		ir.t.Reset(ir.d)
	}
	return n, err
}
