package aisdk

import (
	"encoding/json"
	"fmt"

	"github.com/heraldpush/herald/internal/chat"
	"github.com/heraldpush/herald/internal/hub"
)

// The UI message stream: a text/event-stream whose events carry one JSON
// chunk each in their data ("data: {...}"), no event types and no ids, and
// that ends with "data: [DONE]". Every answer is one assistant message with
// one text part.

// Header and value that mark a response as a UI message stream.
const (
	StreamHeader  = "x-vercel-ai-ui-message-stream"
	StreamVersion = "v1"
)

// textPartID is the id of the answer's text part within its message.
const textPartID = "text"

// done ends the stream.
var done = []byte("data: [DONE]\n\n")

// Chunks of the stream, as the SDK's uiMessageChunkSchema defines them.
type (
	startChunk struct {
		Type      string `json:"type"` // "start"
		MessageID string `json:"messageId"`
	}
	textChunk struct {
		Type string `json:"type"` // "text-start", "text-end"
		ID   string `json:"id"`
	}
	deltaChunk struct {
		Type  string `json:"type"` // "text-delta"
		ID    string `json:"id"`
		Delta string `json:"delta"`
	}
	finishChunk struct {
		Type         string `json:"type"` // "finish"
		FinishReason string `json:"finishReason"`
	}
	abortChunk struct {
		Type   string `json:"type"` // "abort"
		Reason string `json:"reason"`
	}
	errorChunk struct {
		Type      string `json:"type"` // "error"
		ErrorText string `json:"errorText"`
	}
)

// appendChunk appends chunk as one event of the stream. A chunk is JSON of
// strings only: it always encodes, on one line.
func appendChunk(dst []byte, chunk any) []byte {
	b, err := json.Marshal(chunk)
	if err != nil {
		panic(fmt.Sprintf("aisdk: cannot encode %T: %v", chunk, err))
	}
	dst = append(dst, "data: "...)
	dst = append(dst, b...)
	return append(dst, '\n', '\n')
}

// opening is what a stream starts with: the message and its text part.
func opening(messageID string) []byte {
	b := appendChunk(nil, startChunk{Type: "start", MessageID: messageID})
	return appendChunk(b, textChunk{Type: "text-start", ID: textPartID})
}

// finishReason maps the model's reason (OpenAI's words) to the SDK's.
func finishReason(r string) string {
	switch r {
	case "stop", "length":
		return r
	case "content_filter":
		return "content-filter"
	case "tool_calls", "function_call":
		return "tool-calls"
	}
	return "other"
}

// ending returns the chunks that close an answer whose final chat event has
// type typ and JSON data: the text part's end, then finish, abort (after a
// stop) or error, then [DONE].
func ending(typ, data string) []byte {
	b := appendChunk(nil, textChunk{Type: "text-end", ID: textPartID})
	switch typ {
	case chat.EventDone:
		var d chat.Done
		if err := json.Unmarshal([]byte(data), &d); err != nil {
			b = appendChunk(b, errorChunk{Type: "error", ErrorText: "the answer's final event is unreadable: " + err.Error()})
		} else if d.Stopped {
			b = appendChunk(b, abortChunk{Type: "abort", Reason: "stopped"})
		} else {
			b = appendChunk(b, finishChunk{Type: "finish", FinishReason: finishReason(d.FinishReason)})
		}
	default:
		var e chat.Error
		if err := json.Unmarshal([]byte(data), &e); err != nil || e.Message == "" {
			e.Message = "the generation failed"
		}
		b = appendChunk(b, errorChunk{Type: "error", ErrorText: e.Message})
	}
	return append(b, done...)
}

// resetText is the error of a stream whose history could not be replayed
// exactly.
func resetText(r hub.Reset) string {
	return fmt.Sprintf("the answer can no longer be replayed exactly (%s): ask again", r.Reason)
}

// memoKey keys the chunk form of a chat event in hub.Event.Memo: encoded
// once for every stream that relays it.
type memoKey struct{}

// encoder turns the events of one answer's subscription into chunks. It
// keeps the state of one stream: it is not safe for concurrent use.
type encoder struct {
	ended bool // the final chunks are written
}

// encode is an sse.Stream.Encode: it returns the chunks of
// ev, or nil for events that have none (positions, events of other types,
// anything after the end).
func (e *encoder) encode(ev *hub.Event) []byte {
	if e.ended {
		return nil
	}
	switch ev.Kind {
	case hub.KindReset:
		e.ended = true
		b := appendChunk(nil, errorChunk{Type: "error", ErrorText: resetText(ev.Reset)})
		return append(b, done...)
	case hub.KindMessage:
	default:
		return nil
	}
	m := ev.Msg
	switch m.Type {
	case chat.EventToken:
		return ev.Memo(memoKey{}, func() []byte {
			return appendChunk(nil, deltaChunk{Type: "text-delta", ID: textPartID, Delta: m.Data})
		})
	case chat.EventDone, chat.EventError:
		e.ended = true
		return ev.Memo(memoKey{}, func() []byte { return ending(m.Type, m.Data) })
	}
	return nil
}
