package app

import (
	"context"
	"fmt"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/chat"
	"github.com/heraldpush/herald/internal/llm"
	"github.com/heraldpush/herald/internal/llm/demo"
	"github.com/heraldpush/herald/internal/llm/openai"
)

// mountChat registers resumable AI chat streaming: POST /chat, the chat
// page at GET /chat, GET /chat/stream/{id} and POST /chat/stream/{id}/cancel,
// and the AI SDK's endpoints under /ai/chat (see mountAISDK).
// Generations are stopped (their streams end with an error event that keeps
// the partial answer) when the App closes.
func (a *App) mountChat(ctx context.Context, rt *access.Router) error {
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
		Stream:           a.sse,
		// Starting, watching and stopping an answer needs what reading its
		// topic needs (nothing in development mode); stopping it, being
		// the one who started it.
		Access:     a.sec.policy,
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

	// Chat answers are the chat face's: readable by whoever may read the
	// chat, through any face; written by the service alone.
	a.sec.policy.Reserve(access.Namespace{Name: "chat", Face: access.FaceChat, Match: chat.IsTopic, Read: access.ReachAsTopic, Path: "/chat/stream/{id}"})
	face := func(action access.Action, topics bool) access.Route {
		return access.Route{Action: action, Face: access.FaceChat, Topics: topics}
	}
	page, assets, err := chat.Page(a.site())
	if err != nil {
		return err
	}
	rt.Handle("GET /chat", static, page)
	a.dashboardGauges["chat_generations"] = func() float64 { return float64(svc.Running()) }
	rt.HandleFunc("POST /chat", face(access.Create, true), svc.HandleCreate)
	rt.HandleFunc("/chat", face(access.Public, false), chat.MethodNotAllowed("GET, POST"))
	rt.Handle("GET /chat/{file}", static, assets)
	rt.HandleFunc("GET /chat/stream/{id}", face(access.Subscribe, true), svc.HandleStream)
	rt.HandleFunc("/chat/stream/{id}", face(access.Public, false), chat.MethodNotAllowed("GET"))
	rt.HandleFunc("POST /chat/stream/{id}/cancel", face(access.Cancel, true), svc.HandleCancel)
	rt.HandleFunc("/chat/stream/{id}/cancel", face(access.Public, false), chat.MethodNotAllowed("POST"))
	return a.mountAISDK(rt, svc)
}
