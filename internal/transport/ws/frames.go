package ws

import (
	"bytes"
	"encoding/json"

	"github.com/gobwas/ws"

	"github.com/heraldpush/herald/internal/hub"
)

// Frame is the JSON form of an event, as WebSocket clients receive it (one
// text frame each; docs/protocol.md has the schema with the frames the
// transport adds):
//
//	{"type":"event","id":"<epoch>-<n>","event":"price","data":"...","final":true}
//	{"type":"position","id":"<epoch>-<n>"}
//	{"type":"reset","reason":"history-truncated","lastEventId":"<the id the client sent>"}
//
// An event frame carries what the SSE event carries (id, event type, data)
// and, on a final message, final: true. Like SSE it does not name the
// message's topics: a subscriber of one topic must not learn the others a
// message was published to.
type Frame struct {
	Type   string `json:"type"`                  // "event", "reset" or "position"
	ID     string `json:"id,omitempty"`          // event id (event, position)
	Event  string `json:"event,omitempty"`       // event type; absent for the default
	Data   string `json:"data,omitempty"`        // payload, as published
	Reason string `json:"reason,omitempty"`      // reset reason
	Last   string `json:"lastEventId,omitempty"` // reset: the id the client resumed from
	Final  bool   `json:"final,omitempty"`       // the message ends its topics
}

// frameKey keys the WebSocket form of events in hub.Event.Memo; bodyKey
// keys the JSON of a message without its id (see hub.Event.Shared).
type (
	frameKey struct{}
	bodyKey  struct{}
)

// EncodeJSON returns ev's JSON frame.
func EncodeJSON(ev *hub.Event) []byte {
	if base := ev.Shared(); base != nil {
		if b, ok := spliceID(base.Memo(bodyKey{}, func() []byte { return encodeJSON(base, false) }), ev.ID()); ok {
			return b
		}
	}
	return encodeJSON(ev, true)
}

// encodeJSON returns ev's JSON frame, with its id or (a message only)
// without.
func encodeJSON(ev *hub.Event, withID bool) []byte {
	var f Frame
	switch ev.Kind {
	case hub.KindMessage:
		f = Frame{Type: "event", Event: ev.Msg.Type, Data: ev.Msg.Data, Final: ev.Msg.Final}
		if withID {
			f.ID = ev.ID()
		}
	case hub.KindPosition:
		f = Frame{Type: "position", ID: ev.ID()}
	case hub.KindReset:
		f = Frame{Type: "reset", Reason: ev.Reset.Reason, Last: ev.Reset.LastEventID}
	}
	b, _ := json.Marshal(f)
	return b
}

// eventPrefix is how an event frame's JSON starts; its id comes next.
const eventPrefix = `{"type":"event"`

// spliceID returns body, an event frame without an id, with id where
// json.Marshal puts it (the bytes Frame{ID: id, ...} marshals to). It
// reports false when id would need escaping in JSON (the hub's vector ids
// never do).
func spliceID(body []byte, id string) ([]byte, bool) {
	if !bytes.HasPrefix(body, []byte(eventPrefix)) {
		return nil, false
	}
	for i := range len(id) {
		if c := id[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return nil, false
		}
	}
	b := make([]byte, 0, len(body)+len(id)+8)
	b = append(b, eventPrefix...)
	b = append(b, `,"id":"`...)
	b = append(b, id...)
	b = append(b, '"')
	return append(b, body[len(eventPrefix):]...), true
}

// encode returns ev as a whole WebSocket text frame (header and JSON),
// computed once per event for all its subscribers (an event with an id of
// its subscriber's own is one subscriber's: see hub.Event.Shared).
func encode(ev *hub.Event) []byte {
	if ev.Shared() != nil {
		return textFrame(EncodeJSON(ev))
	}
	return ev.Memo(frameKey{}, func() []byte { return textFrame(EncodeJSON(ev)) })
}

// textFrame returns p as one unmasked text frame, as a server sends it.
func textFrame(p []byte) []byte {
	return ws.MustCompileFrame(ws.NewTextFrame(p))
}

// closeFrame returns a close frame with code and reason.
func closeFrame(code CloseCode, reason string) []byte {
	return ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), reason)))
}

// Frames a client sends (JSON text frames). Unknown fields are refused.
//
//	{"type":"resume","lastEventId":"<id or empty>"}     first frame with resume=frame
//	{"type":"send","msgId":"m1","topic":"chat","event":"msg","data":<any JSON>}
//	{"type":"ping","t":<any JSON>}                       answered by {"type":"pong","t":...}
type clientFrame struct {
	Type        string          `json:"type"`
	LastEventID *string         `json:"lastEventId,omitempty"`
	MsgID       string          `json:"msgId,omitempty"`
	Topic       string          `json:"topic,omitempty"`
	Event       string          `json:"event,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	T           json.RawMessage `json:"t,omitempty"`
}

// Frames the server sends besides the events (see Frame).
type (
	// ackFrame acknowledges a client message: it was delivered (or had
	// been, when duplicate is set).
	ackFrame struct {
		Type      string `json:"type"` // "ack"
		MsgID     string `json:"msgId"`
		ID        string `json:"id,omitempty"`
		Duplicate bool   `json:"duplicate,omitempty"`
	}
	// errorFrame reports a bad frame or a message that was not delivered.
	// Status follows HTTP: 4xx means do not retry, 5xx retry with the same
	// msgId. The connection stays open.
	errorFrame struct {
		Type   string `json:"type"` // "error"
		MsgID  string `json:"msgId,omitempty"`
		Status int    `json:"status"`
		Code   string `json:"code,omitempty"` // the policy's reason, e.g. "token_expired"
		Error  string `json:"error"`
	}
	pongFrame struct {
		Type string          `json:"type"` // "pong"
		T    json.RawMessage `json:"t,omitempty"`
	}
)

// marshal returns v as a text frame.
func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("ws: unencodable frame: " + err.Error())
	}
	return textFrame(b)
}

// CloseCode is a WebSocket close code (RFC 6455 §7.4).
type CloseCode uint16

// Close codes the server ends a connection with. Codes 4000–4999 are
// Herald's own; the others are RFC 6455's.
const (
	// CloseFinished (1000, reason "finished"): every topic is finished and
	// the client has the final events. Do not reconnect.
	CloseFinished CloseCode = 1000
	// CloseGoingAway (1001): the server is shutting down. Reconnect and
	// resume.
	CloseGoingAway CloseCode = 1001
	// CloseProtocolError (1002): the client broke RFC 6455 (an unmasked
	// frame, a reserved opcode or bit, a fragmented or oversized control
	// frame, a continuation out of place, a bad close code).
	CloseProtocolError CloseCode = 1002
	// CloseInvalidPayload (1007): a text frame (or close reason) that is
	// not valid UTF-8.
	CloseInvalidPayload CloseCode = 1007
	// CloseTooBig (1009): a message over --ws-max-frame-bytes.
	CloseTooBig CloseCode = 1009
	// CloseInternal (1011): history could not be read. Reconnect later.
	CloseInternal CloseCode = 1011
	// CloseSlowConsumer (4001): the client fell too far behind. Reconnect
	// and resume.
	CloseSlowConsumer CloseCode = 4001
	// CloseEpochChanged (4002): the server's history was lost or recreated.
	// Reconnect and resume: the client is told what happened by a reset.
	CloseEpochChanged CloseCode = 4002
	// CloseKicked (4003): an administrator ended the connection.
	CloseKicked CloseCode = 4003
	// CloseAuthExpired (4401): the client's credentials expired. Reconnect
	// with fresh ones.
	CloseAuthExpired CloseCode = 4401
	// CloseResumeTimeout (4408): no "resume" frame came in time after
	// connecting with resume=frame.
	CloseResumeTimeout CloseCode = 4408
	// CloseAlreadyFinished (4204): the client resumed at or after the
	// final event of every topic: there is nothing more to send. Do not
	// reconnect (the WebSocket twin of SSE's 204 No Content).
	CloseAlreadyFinished CloseCode = 4204
)
