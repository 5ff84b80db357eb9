package config

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"
)

// Chat configures resumable AI chat streaming: POST /chat, GET /chat/stream/{id}
// and the chat page. With no LLMBaseURL the built-in offline demo model
// answers.
type Chat struct {
	// Enabled serves the chat endpoints and page.
	Enabled bool

	// LLMBaseURL is the root of an OpenAI-compatible API, e.g.
	// https://api.openai.com/v1 or http://localhost:11434/v1 (Ollama).
	// Empty: the demo model.
	LLMBaseURL string
	// LLMAPIKey is sent as a bearer token to the upstream.
	LLMAPIKey string
	// LLMModel is the default model of the upstream.
	LLMModel string
	// LLMAllowedModels are further models a client may ask for by name.
	LLMAllowedModels Strings
	// LLMMaxTokensField names the request field of the token limit.
	LLMMaxTokensField string
	// LLMTimeout bounds the wait for the upstream's answer and then for
	// each of its chunks.
	LLMTimeout time.Duration
	// LLMDemoDelay is the demo model's mean delay between tokens.
	LLMDemoDelay time.Duration

	// MaxPromptBytes bounds the total size of a request's messages.
	MaxPromptBytes ByteSize
	// MaxMessages bounds the messages of one request.
	MaxMessages int
	// MaxConcurrent bounds the generations running on this node.
	MaxConcurrent int
	// MaxConcurrentPerClient bounds the generations one client (IP
	// address) may have running.
	MaxConcurrentPerClient int
	// MaxTokens bounds an answer, in tokens (the upstream's chunks).
	MaxTokens int
	// MaxDuration bounds a generation's running time.
	MaxDuration time.Duration
	// Retention is how long a finished answer stays available.
	Retention time.Duration
}

func (c *Chat) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, "chat", true, "serve resumable AI chat streaming: POST /chat, GET /chat/stream/{id}, the chat page at /chat, and the AI SDK endpoints under /ai/chat")
	fs.StringVar(&c.LLMBaseURL, "llm-base-url", "", "root of an OpenAI-compatible chat completions API, e.g. https://api.openai.com/v1 or http://localhost:11434/v1 (Ollama); empty uses the built-in offline demo model")
	fs.StringVar(&c.LLMAPIKey, "llm-api-key", "", "API key sent to the upstream as a bearer token (prefer the environment variable)")
	fs.StringVar(&c.LLMModel, "llm-model", "", "default model of the upstream, e.g. gpt-4o-mini or llama3.2 (required with --llm-base-url)")
	fs.Var(&c.LLMAllowedModels, "llm-allowed-models", "further models clients may ask for with \"model\" (comma-separated; the default model is always allowed)")
	fs.StringVar(&c.LLMMaxTokensField, "llm-max-tokens-field", "max_tokens", "request field that carries --chat-max-tokens upstream: max_tokens, max_completion_tokens (OpenAI reasoning models) or none")
	fs.DurationVar(&c.LLMTimeout, "llm-timeout", 60*time.Second, "how long to wait for the upstream's answer, and then for each chunk of it, before failing the generation")
	fs.DurationVar(&c.LLMDemoDelay, "llm-demo-delay", 30*time.Millisecond, "mean delay between two tokens of the built-in demo model")
	c.MaxPromptBytes = 32 << 10
	fs.Var(&c.MaxPromptBytes, "chat-max-prompt-bytes", "largest total size of a chat request's messages")
	fs.IntVar(&c.MaxMessages, "chat-max-messages", 50, "most messages in one chat request")
	fs.IntVar(&c.MaxConcurrent, "chat-max-concurrent", 64, "most generations running at once on this node")
	fs.IntVar(&c.MaxConcurrentPerClient, "chat-max-concurrent-per-client", 4, "most generations one client (IP address) may have running at once")
	fs.IntVar(&c.MaxTokens, "chat-max-tokens", 960, "longest answer, in tokens; keep it below --history-max-events for one event per token (longer answers have tokens grouped to fit the history)")
	fs.DurationVar(&c.MaxDuration, "chat-max-duration", 10*time.Minute, "longest running time of one generation")
	fs.DurationVar(&c.Retention, "chat-retention", time.Hour, "how long a finished answer stays available (at most --history-max-age)")
}

func (c *Chat) validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if c.LLMBaseURL != "" {
		u, err := url.Parse(c.LLMBaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("llm-base-url: %q is not an http(s) URL such as https://api.openai.com/v1", RedactURL(c.LLMBaseURL)))
		}
		if c.LLMModel == "" {
			errs = append(errs, errors.New("llm-model: required with --llm-base-url (e.g. gpt-4o-mini for OpenAI, llama3.2 for Ollama)"))
		}
	}
	switch c.LLMMaxTokensField {
	case "max_tokens", "max_completion_tokens", "none":
	default:
		errs = append(errs, fmt.Errorf("llm-max-tokens-field: %q is not max_tokens, max_completion_tokens or none", c.LLMMaxTokensField))
	}
	positive := map[string]time.Duration{"llm-timeout": c.LLMTimeout, "chat-max-duration": c.MaxDuration, "chat-retention": c.Retention}
	for _, name := range sortedKeys(positive) {
		if positive[name] <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", name, positive[name]))
		}
	}
	if c.LLMDemoDelay < 0 {
		errs = append(errs, fmt.Errorf("llm-demo-delay: must not be negative, got %s", c.LLMDemoDelay))
	}
	if c.MaxPromptBytes <= 0 || c.MaxMessages <= 0 || c.MaxConcurrent <= 0 || c.MaxConcurrentPerClient <= 0 || c.MaxTokens <= 0 {
		errs = append(errs, errors.New("chat-max-prompt-bytes, chat-max-messages, chat-max-concurrent, chat-max-concurrent-per-client, chat-max-tokens: must be positive"))
	}
	return errors.Join(errs...)
}
