package hub

import (
	"sync"
	"sync/atomic"

	"github.com/heraldpush/herald/pubsub"
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

// ResetEventType is the event type of reset events (the SSE event type; the
// WebSocket transport sends a "reset" frame).
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
// are shared by every subscriber. The hub does not encode events: each
// transport encodes an event in its wire form once, for all its
// subscribers, and keeps it on the event (Memo).
type Event struct {
	Kind  Kind
	Msg   *pubsub.Message // KindMessage; on a KindPosition, the hidden final message it stands for
	Pos   pubsub.Position // KindPosition
	Reset Reset           // KindReset

	// id, when set, is the event's id for one subscriber: its position in
	// each of the logs it reads (a subscription of topics on several
	// shards). base, if set, is then the shared event of the same message
	// (see Shared).
	id   string
	base *Event

	memo   atomic.Pointer[memoEntry] // a list, newest first, never changed once published
	memoMu sync.Mutex                // serialises the computations of Memo
}

type memoEntry struct {
	key  any
	val  []byte
	next *memoEntry
}

// NewMessageEvent returns the Event for m.
func NewMessageEvent(m *pubsub.Message) *Event {
	return &Event{Kind: KindMessage, Msg: m}
}

// ID returns the event id a client sees, or "" for a reset: for a
// subscription of topics on several shards, a vector of its positions in
// each log (see package pubsub/shard), which differs from subscriber to
// subscriber.
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

// Shared returns the event shared by every subscriber of the message e
// stands for, when e is one subscriber's copy of it with an id of its own
// (see ID); otherwise nil. A transport encodes what does not depend on the
// id once, on the shared event (Memo), and adds the id per subscriber.
func (e *Event) Shared() *Event { return e.base }

// Memo returns the bytes f computes for key, calling f once per event and
// key however many subscribers ask: a transport (or a face with a wire
// format of its own, such as the Mercure endpoint) encodes an event once
// for all its subscribers. A key already computed is found without a lock.
// key must be comparable; use an unexported type of the calling package so
// that encodings cannot collide. f must not call Memo on the same event.
func (e *Event) Memo(key any, f func() []byte) []byte {
	for m := e.memo.Load(); m != nil; m = m.next {
		if m.key == key {
			return m.val
		}
	}
	e.memoMu.Lock()
	defer e.memoMu.Unlock()
	head := e.memo.Load()
	for m := head; m != nil; m = m.next {
		if m.key == key {
			return m.val
		}
	}
	v := f()
	e.memo.Store(&memoEntry{key: key, val: v, next: head})
	return v
}

// size is what the event counts against a queue's byte limit.
func (e *Event) size() int {
	if e.Kind == KindMessage {
		return e.Msg.Size()
	}
	return 64
}
