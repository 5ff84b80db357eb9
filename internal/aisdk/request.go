package aisdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/heraldpush/herald/internal/httpjson"

	"github.com/heraldpush/herald/internal/chat"
	"github.com/heraldpush/herald/internal/llm"
)

// MaxChatIDLen is the longest chat id accepted, in bytes.
const MaxChatIDLen = chat.MaxConversationLen

// Request is the body of POST /ai/chat: what the AI SDK's
// DefaultChatTransport sends.
type Request struct {
	// ID is the chat's id, chosen by the client.
	ID string `json:"id"`
	// Messages are the chat's UI messages, oldest first.
	Messages []Message `json:"messages"`
	// Trigger is "submit-message" or "regenerate-message". Either way
	// Messages end where the answer starts.
	Trigger string `json:"trigger"`
	// MessageID is the id of the message sent or regenerated, if any.
	MessageID string `json:"messageId,omitempty"`
	// Model, if set (through the transport's body option), picks one of the
	// allowed models.
	Model string `json:"model,omitempty"`
}

// Message is a UI message. Fields the SDK may add are ignored.
type Message struct {
	ID    string `json:"id"`
	Role  string `json:"role"`
	Parts []Part `json:"parts"`
}

// Part is one part of a UI message; only text parts carry text the model
// reads. Other fields of a part are ignored.
type Part struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// requestFields are the members of a Request body.
var requestFields = []string{"id", "messages", "trigger", "messageId", "model"}

// Parts that the model does not read and that are left out: the UI's own
// bookkeeping, the model's reasoning and sources it cited, and data parts.
var skippedParts = []string{"step-start", "reasoning", "source-url", "source-document"}

// badRequest is a 400 answer's message.
type badRequest string

func (e badRequest) Error() string { return string(e) }

func badRequestf(format string, args ...any) error {
	return badRequest(fmt.Sprintf(format, args...))
}

// parseRequest decodes and checks a POST /ai/chat body and returns it as a
// request to the chat service. Its errors are badRequest values.
func parseRequest(body []byte) (*Request, *chat.CreateRequest, error) {
	if err := httpjson.CheckDuplicateKeys(body); err != nil {
		return nil, nil, badRequestf("%v", err)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return nil, nil, badRequestf("malformed JSON: %v", err)
	}
	if members == nil {
		return nil, nil, badRequest("malformed JSON: the body must be an object")
	}
	for k := range members {
		if !slices.Contains(requestFields, k) {
			return nil, nil, badRequestf("unknown field %q (this endpoint takes %s)", k, strings.Join(requestFields, ", "))
		}
	}
	var req Request
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return nil, nil, badRequestf("malformed JSON: %v", err)
	}
	if req.ID == "" || len(req.ID) > MaxChatIDLen || !utf8.ValidString(req.ID) || strings.ContainsFunc(req.ID, unicode.IsControl) {
		return nil, nil, badRequestf(`"id" (the chat's id) must be 1 to %d bytes of text without control characters`, MaxChatIDLen)
	}
	switch req.Trigger {
	case "", "submit-message", "regenerate-message":
	default:
		return nil, nil, badRequestf(`"trigger" must be "submit-message" or "regenerate-message", got %q`, req.Trigger)
	}
	msgs, err := modelMessages(req.Messages)
	if err != nil {
		return nil, nil, err
	}
	return &req, &chat.CreateRequest{Messages: msgs, Model: req.Model, Conversation: req.ID}, nil
}

// modelMessages turns UI messages into the model's messages: the text parts
// of each, joined. Assistant messages without text (an answer stopped
// before its first token) are left out; the chat service checks the rest.
func modelMessages(ui []Message) ([]llm.Message, error) {
	if len(ui) == 0 {
		return nil, badRequest(`"messages" is required: give at least one {"role": "user", "parts": [{"type": "text", "text": "..."}]}`)
	}
	out := make([]llm.Message, 0, len(ui))
	for i, m := range ui {
		switch m.Role {
		case llm.RoleUser, llm.RoleAssistant, llm.RoleSystem:
		case "":
			return nil, badRequestf("messages[%d]: missing \"role\" (user, assistant or system)", i)
		default:
			return nil, badRequestf("messages[%d]: unknown role %q (use user, assistant or system)", i, m.Role)
		}
		var text strings.Builder
		for j, p := range m.Parts {
			switch {
			case p.Type == "text":
				text.WriteString(p.Text)
			case slices.Contains(skippedParts, p.Type), strings.HasPrefix(p.Type, "data-"):
			case p.Type == "":
				return nil, badRequestf("messages[%d].parts[%d]: missing \"type\"", i, j)
			default:
				return nil, badRequestf("messages[%d].parts[%d]: %q parts are not supported: Herald's chat sends text only", i, j, p.Type)
			}
		}
		if text.Len() == 0 && m.Role == llm.RoleAssistant {
			continue
		}
		out = append(out, llm.Message{Role: m.Role, Content: text.String()})
	}
	return out, nil
}
