package config

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func chatFlags(t *testing.T, args []string, env map[string]string) (*Server, *flag.FlagSet, error) {
	t.Helper()
	var c Server
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.Register(fs)
	err := Parse(fs, args, func(k string) string { return env[k] })
	return &c, fs, err
}

func TestChatDefaults(t *testing.T) {
	c, _, err := chatFlags(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch := c.Chat
	if !ch.Enabled || ch.LLMBaseURL != "" || ch.LLMTimeout != time.Minute || ch.LLMDemoDelay != 30*time.Millisecond ||
		ch.MaxTokens != 960 || ch.MaxConcurrent != 64 || ch.MaxConcurrentPerClient != 4 || ch.MaxMessages != 50 ||
		ch.MaxPromptBytes != 32<<10 || ch.Retention != time.Hour || ch.MaxDuration != 10*time.Minute {
		t.Fatalf("defaults: %+v", ch)
	}
	if ch.MaxTokens >= c.History.MaxEvents {
		t.Fatal("the default max tokens does not fit the default per-topic history: tokens would be grouped")
	}
	if err := ch.validate(); err != nil {
		t.Fatal(err)
	}
}

func TestChatAPIKeyFromTheEnvironmentIsSecret(t *testing.T) {
	c, fs, err := chatFlags(t, []string{"--llm-base-url", "http://localhost:11434/v1", "--llm-model", "llama3.2"}, map[string]string{"HERALD_LLM_API_KEY": "sk-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Chat.LLMAPIKey != "sk-secret" {
		t.Fatalf("key = %q", c.Chat.LLMAPIKey)
	}
	if got := Redacted(fs)["llm-api-key"]; got != "REDACTED" {
		t.Fatalf("redacted key = %q", got)
	}
	if err := c.Chat.validate(); err != nil {
		t.Fatal(err)
	}
}

func TestChatValidate(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--llm-base-url", "https://api.openai.com/v1"}, "llm-model: required"},
		{[]string{"--llm-base-url", "api.openai.com", "--llm-model", "m"}, "llm-base-url"},
		{[]string{"--llm-timeout", "0s"}, "llm-timeout: must be positive"},
		{[]string{"--llm-demo-delay", "-1s"}, "llm-demo-delay"},
		{[]string{"--chat-max-tokens", "0"}, "chat-max-tokens"},
		{[]string{"--chat-max-concurrent-per-client", "-1"}, "must be positive"},
		{[]string{"--chat-retention", "0s"}, "chat-retention"},
		{[]string{"--llm-max-tokens-field", "max_length"}, "llm-max-tokens-field"},
	}
	for _, tt := range tests {
		c, _, err := chatFlags(t, tt.args, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Chat.validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.want)
		}
	}
	// Disabled: nothing to check.
	c, _, _ := chatFlags(t, []string{"--chat=false", "--llm-base-url", "nonsense"}, nil)
	if err := c.Chat.validate(); err != nil {
		t.Fatalf("--chat=false: %v", err)
	}
}
