package hub

import (
	"encoding/json"
	"sync"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/sse"
)

// Kind tells what an Event is.
type Kind uint8

const (
	// KindMessage is a published message.
	KindMessage Kind = iota
	// KindReset is a herald.reset event: the client may have missed events.
	KindReset
	// KindPosition carries only an id: the client's position after the
	// prelude, so that a client that saw no event still resumes exactly.
	KindPosition
)

// ResetEventType is the SSE event type of reset events.
const ResetEventType = "herald.reset"

// Reset reasons, the "reason" of a herald.reset event.
const (
	ReasonTruncated    = "history-truncated"
	ReasonEpochChanged = "epoch-changed"
	ReasonInvalidID    = "invalid-id"
)

// Reset is the data of a herald.reset event.
type Reset struct {
	Reason      string `json:"reason"`
	LastEventID string `json:"lastEventId"`
}

// Event is one item of a subscription's stream. Events of published messages
// are shared by every subscriber; their wire forms are computed once.
type Event struct {
	Kind  Kind
	Msg   *pubsub.Message // KindMessage; on a KindPosition, the hidden final message it stands for
	Pos   pubsub.Position // KindPosition
	Reset Reset           // KindReset

	// id, when set, is the event's id for one subscriber: its position in
	// each of the logs it reads (a subscription of topics on several
	// shards). base is then the shared event of the same message, whose
	// encodings without an id this one reuses.
	id   string
	base *Event

	sseOnce  sync.Once
	sse      []byte
	jsonOnce sync.Once
	json     []byte
	bodyOnce sync.Once
	body     []byte // sseBody

	memoMu sync.Mutex
	memo   []memoEntry
}

type memoEntry struct {
	key any
	val []byte
}

// NewMessageEvent returns the Event for m.
func NewMessageEvent(m *pubsub.Message) *Event {
	return &Event{Kind: KindMessage, Msg: m}
}

// ID returns the event id a client sees, or "" for a reset.
func (e *Event) ID() string {
	if e.id != "" {
		return e.id
	}
	switch e.Kind {
	case KindMessage:
		return e.Msg.Pos.String()
	case KindPosition:
		return e.Pos.String()
	}
	return ""
}

// SSE returns the event's text/event-stream form. It is computed once.
func (e *Event) SSE() []byte {
	e.sseOnce.Do(func() {
		var err error
		switch {
		case e.base != nil:
			// "id: <vector>" ahead of the shared event's other fields:
			// their order in an SSE event does not matter.
			// (Vector ids hold base-36 digits, '~', '.' and '-' only.)
			body := e.base.sseBody()
			buf := make([]byte, 0, len(e.id)+len(body)+5)
			buf = append(append(append(buf, "id: "...), e.id...), '\n')
			e.sse = append(buf, body...)
		case e.Kind == KindMessage:
			ev := sse.Event{ID: e.ID(), Type: e.Msg.Type, Data: e.Msg.Payload()}
			// Room for the fields of a one-line event: one allocation.
			buf := make([]byte, 0, len(ev.ID)+len(ev.Type)+len(ev.Data)+24)
			e.sse, err = ev.AppendTo(buf)
		case e.Kind == KindPosition:
			e.sse, err = sse.AppendID(nil, e.ID())
		case e.Kind == KindReset:
			data, _ := json.Marshal(e.Reset)
			ev := sse.Event{Type: ResetEventType, Data: string(data)}
			e.sse, err = ev.AppendTo(nil)
		}
		if err != nil {
			// Publishers validate types and ids; reaching this is a bug.
			panic("hub: unencodable event: " + err.Error())
		}
	})
	return e.sse
}

// sseBody returns the text/event-stream form of a message event without
// its id field, computed once (see Event.base).
func (e *Event) sseBody() []byte {
	e.bodyOnce.Do(func() {
		ev := sse.Event{Type: e.Msg.Type, Data: e.Msg.Payload()}
		var err error
		if e.body, err = ev.AppendTo(make([]byte, 0, len(ev.Type)+len(ev.Data)+20)); err != nil {
			panic("hub: unencodable event: " + err.Error())
		}
	})
	return e.body
}

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

// JSON returns the event's JSON frame. It is computed once.
func (e *Event) JSON() []byte {
	e.jsonOnce.Do(func() {
		var f Frame
		switch e.Kind {
		case KindMessage:
			f = Frame{Type: "event", ID: e.ID(), Event: e.Msg.Type, Data: e.Msg.Payload(), Final: e.Msg.Final}
		case KindPosition:
			f = Frame{Type: "position", ID: e.ID()}
		case KindReset:
			f = Frame{Type: "reset", Reason: e.Reset.Reason, Last: e.Reset.LastEventID}
		}
		e.json, _ = json.Marshal(f)
	})
	return e.json
}

// Memo returns the bytes f computes for key, calling f once per event and
// key: a transport with a wire format of its own (the Mercure endpoint)
// encodes an event once for all its subscribers, as SSE and JSON do. key
// must be comparable; use an unexported type of the calling package so that
// transports cannot collide. f must not call Memo on the same event.
func (e *Event) Memo(key any, f func() []byte) []byte {
	e.memoMu.Lock()
	defer e.memoMu.Unlock()
	for _, m := range e.memo {
		if m.key == key {
			return m.val
		}
	}
	v := f()
	e.memo = append(e.memo, memoEntry{key, v})
	return v
}

// size is what the event counts against a queue's byte limit.
func (e *Event) size() int {
	if e.Kind == KindMessage {
		return e.Msg.Size()
	}
	return 64
}
