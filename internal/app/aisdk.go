package app

import (
	"net/http"

	"github.com/heraldpush/herald/internal/aisdk"
	"github.com/heraldpush/herald/internal/chat"
	"github.com/heraldpush/herald/internal/eventstream"
)

// mountAISDK registers the AI SDK's chat endpoints on top of the chat
// service: POST /ai/chat, GET /ai/chat/{id}/stream and POST
// /ai/chat/{id}/stop. They ask the chat service's Access hook, so whoever
// may start or watch a chat answer may use them likewise.
func (a *App) mountAISDK(mux *http.ServeMux, svc *chat.Service) error {
	h, err := aisdk.New(aisdk.Options{
		Chat: svc,
		Stream: eventstream.StreamOptions{
			KeepAlive: a.cfg.Core.KeepAlive, WriteTimeout: a.cfg.Core.WriteTimeout,
			Metrics: a.metrics, Logger: a.log,
		},
		Logger: a.log,
	})
	if err != nil {
		return err
	}
	mux.HandleFunc("POST /ai/chat", h.HandleChat)
	mux.HandleFunc("/ai/chat", chat.MethodNotAllowed("POST"))
	mux.HandleFunc("GET /ai/chat/{id}/stream", h.HandleStream)
	mux.HandleFunc("/ai/chat/{id}/stream", chat.MethodNotAllowed("GET"))
	mux.HandleFunc("POST /ai/chat/{id}/stop", h.HandleStop)
	mux.HandleFunc("/ai/chat/{id}/stop", chat.MethodNotAllowed("POST"))
	return nil
}
