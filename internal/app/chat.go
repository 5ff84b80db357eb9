package app

import (
	"context"
	"fmt"
	"net/http"

	"github.com/heraldpush/herald/internal/chat"
	"github.com/heraldpush/herald/internal/eventstream"
	"github.com/heraldpush/herald/internal/llm"
	"github.com/heraldpush/herald/internal/llm/demo"
	"github.com/heraldpush/herald/internal/llm/openai"
)

// mountChat registers resumable AI chat streaming: POST /chat, the chat
// page at GET /chat, GET /chat/stream/{id} and POST /chat/stream/{id}/cancel.
// Generations are stopped (their streams end with an error event that keeps
// the partial answer) when the App closes.
func (a *App) mountChat(ctx context.Context, mux *http.ServeMux) error {
	c := &a.cfg.Chat
	if !c.Enabled {
		return nil
	}
	if h := a.cfg.History; h.MaxAge > 0 && c.Retention > h.MaxAge {
		return fmt.Errorf("--chat-retention (%s) is longer than --history-max-age (%s): the history would forget answers first", c.Retention, h.MaxAge)
	}
	var provider llm.Provider
	if c.LLMBaseURL == "" {
		provider = demo.New(&demo.Options{Delay: c.LLMDemoDelay})
	} else {
		p, err := openai.New(openai.Options{BaseURL: c.LLMBaseURL, APIKey: c.LLMAPIKey, Model: c.LLMModel, Timeout: c.LLMTimeout, MaxTokensField: c.LLMMaxTokensField})
		if err != nil {
			return err
		}
		provider = p
	}
	svc, err := chat.New(chat.Options{
		Hub:      a.hub,
		Provider: provider,
		Limits: chat.Limits{
			MaxPromptBytes:         int(c.MaxPromptBytes),
			MaxMessages:            c.MaxMessages,
			MaxConcurrent:          c.MaxConcurrent,
			MaxConcurrentPerClient: c.MaxConcurrentPerClient,
			MaxTokens:              c.MaxTokens,
			MaxDuration:            c.MaxDuration,
			AllowedModels:          c.LLMAllowedModels,
		},
		HistoryMaxEvents: a.cfg.History.MaxEvents,
		Retention:        c.Retention,
		Stream: eventstream.StreamOptions{
			Retry: a.cfg.Core.Retry, KeepAlive: a.cfg.Core.KeepAlive, WriteTimeout: a.cfg.Core.WriteTimeout,
			Metrics: a.metrics, Logger: a.log,
		},
		// Starting, watching and stopping an answer needs what subscribing
		// to its topic needs (nothing in development mode).
		Access: func(r *http.Request, topic string) error {
			_, err := a.subscribeAccess(r, []string{topic})
			return err
		},
		// Behind a trusted reverse proxy, the client is the one it names.
		ClientKey:  func(r *http.Request) string { return a.sec.ips.IP(r).String() },
		Registerer: a.metrics.Registry,
		Logger:     a.log,
		Journal:    a.journal,
	})
	if err != nil {
		return err
	}
	a.onDrain(func(ctx context.Context) {
		if err := svc.Close(ctx); err != nil {
			a.log.Warn("chat shutdown", "err", err)
		}
	})
	a.log.Info("chat enabled", "provider", provider.Name(), "model", provider.Model())

	mux.HandleFunc("GET /chat", chat.HandlePage)
	a.dashboardGauges["chat_generations"] = func() float64 { return float64(svc.Running()) }
	mux.HandleFunc("POST /chat", svc.HandleCreate)
	mux.HandleFunc("/chat", chat.MethodNotAllowed("GET, POST"))
	mux.HandleFunc("GET /chat/{file}", chat.HandleAsset)
	mux.HandleFunc("GET /chat/stream/{id}", svc.HandleStream)
	mux.HandleFunc("/chat/stream/{id}", chat.MethodNotAllowed("GET"))
	mux.HandleFunc("POST /chat/stream/{id}/cancel", svc.HandleCancel)
	mux.HandleFunc("/chat/stream/{id}/cancel", chat.MethodNotAllowed("POST"))
	return nil
}
