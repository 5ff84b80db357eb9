package app

import (
	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/aisdk"
	"github.com/heraldpush/herald/internal/chat"
)

// mountAISDK registers the AI SDK's chat endpoints on top of the chat
// service: POST /ai/chat, GET /ai/chat/{id}/stream and POST
// /ai/chat/{id}/stop. They ask the chat service's Access hook, so whoever
// may start or watch a chat answer may use them likewise.
func (a *App) mountAISDK(rt *access.Router, svc *chat.Service) error {
	h, err := aisdk.New(aisdk.Options{
		Chat:   svc,
		Stream: a.sse,
		Logger: a.log,
	})
	if err != nil {
		return err
	}
	// The AI SDK's face is the chat's: its answers are chat answers, and
	// the chat service asks the policy for each request.
	face := func(action access.Action, topics bool) access.Route {
		return access.Route{Action: action, Face: access.FaceChat, Topics: topics}
	}
	rt.HandleFunc("POST /ai/chat", face(access.Create, true), h.HandleChat)
	rt.HandleFunc("/ai/chat", face(access.Public, false), chat.MethodNotAllowed("POST"))
	rt.HandleFunc("GET /ai/chat/{id}/stream", face(access.Subscribe, true), h.HandleStream)
	rt.HandleFunc("/ai/chat/{id}/stream", face(access.Public, false), chat.MethodNotAllowed("GET"))
	rt.HandleFunc("POST /ai/chat/{id}/stop", face(access.Cancel, true), h.HandleStop)
	rt.HandleFunc("/ai/chat/{id}/stop", face(access.Public, false), chat.MethodNotAllowed("POST"))
	return nil
}
