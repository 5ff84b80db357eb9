package ws

import (
	"encoding/json"

	"github.com/coder/websocket"
)

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

// Frames the server sends besides the hub's event, reset and position
// frames (see hub.Frame).
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

func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("ws: unencodable frame: " + err.Error())
	}
	return b
}

// Close codes the server ends a connection with. Codes 4000–4999 are
// Herald's own.
const (
	// CloseFinished (1000, reason "finished"): every topic is finished and
	// the client has the final events. Do not reconnect.
	CloseFinished = websocket.StatusNormalClosure
	// CloseGoingAway (1001): the server is shutting down. Reconnect and
	// resume.
	CloseGoingAway = websocket.StatusGoingAway
	// CloseInternal (1011): history could not be read. Reconnect later.
	CloseInternal = websocket.StatusInternalError
	// CloseSlowConsumer (4001): the client fell too far behind. Reconnect
	// and resume.
	CloseSlowConsumer websocket.StatusCode = 4001
	// CloseEpochChanged (4002): the server's history was lost or recreated.
	// Reconnect and resume: the client is told what happened by a reset.
	CloseEpochChanged websocket.StatusCode = 4002
	// CloseKicked (4003): an administrator ended the connection.
	CloseKicked websocket.StatusCode = 4003
	// CloseAuthExpired (4401): the client's credentials expired. Reconnect
	// with fresh ones.
	CloseAuthExpired websocket.StatusCode = 4401
	// CloseResumeTimeout (4408): no "resume" frame came in time after
	// connecting with resume=frame.
	CloseResumeTimeout websocket.StatusCode = 4408
	// CloseAlreadyFinished (4204): the client resumed at or after the
	// final event of every topic: there is nothing more to send. Do not
	// reconnect (the WebSocket twin of SSE's 204 No Content).
	CloseAlreadyFinished websocket.StatusCode = 4204
)
