// Package llm is the contract between Herald's chat service and the large
// language models it streams answers from: a [Provider] turns a [Request]
// into an iterator of [Chunk]s. Implementations live in their own packages
// (openai for OpenAI-compatible servers, demo for the built-in offline
// model) so that the chat service depends on the contract only.
package llm

import (
	"context"
	"errors"
	"iter"
)

// Roles a chat message may have.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Request asks a model to continue a conversation.
type Request struct {
	// Model to use; empty means the provider's default.
	Model string
	// Messages of the conversation so far, oldest first.
	Messages []Message
	// MaxTokens bounds the answer; zero means the provider's default.
	MaxTokens int
}

// Usage is the token accounting an upstream reports, when it does.
type Usage struct {
	PromptTokens     int `json:"promptTokens"`
	CompletionTokens int `json:"completionTokens"`
	TotalTokens      int `json:"totalTokens"`
}

// Chunk is one piece of a streamed answer. Any of its fields may be empty:
// a chunk may carry text, the reason the answer ended, usage, or several of
// them.
type Chunk struct {
	// Text is the next piece of the answer, exactly as the model produced it.
	Text string
	// FinishReason, when set, tells why the model stopped ("stop",
	// "length", "content_filter", ...).
	FinishReason string
	// Usage, when set, is the upstream's token accounting.
	Usage *Usage
}

// Provider streams answers from a model. Implementations must be safe for
// concurrent use.
type Provider interface {
	// Name identifies the provider in logs and answers ("openai", "demo").
	Name() string
	// Model is the model used when a request names none.
	Model() string
	// Stream starts generating an answer and returns its chunks in order.
	// The sequence ends after the last chunk; an error (the upstream's, a
	// timeout, a malformed chunk, or ctx's) is yielded once, as the last
	// pair, with a message fit to show a user. Stopping the iteration early
	// or cancelling ctx aborts the upstream request. Nothing is sent
	// upstream until the iteration starts.
	Stream(ctx context.Context, req Request) iter.Seq2[Chunk, error]
}

// ErrUpstream is wrapped by the errors a provider yields when its upstream
// fails: an error status, a timeout, a malformed or truncated stream.
var ErrUpstream = errors.New("llm upstream")
