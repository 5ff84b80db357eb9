package sseclient

import (
	"encoding/json"

	"github.com/heraldpush/herald/sse"
)

// ResetEventType is the type of the event by which a Herald server tells a
// resuming client that it may have missed events.
const ResetEventType = "herald.reset"

// Reasons a Herald server gives in a Reset.
const (
	// ReasonHistoryTruncated: events after the client's position were
	// evicted from history before it came back.
	ReasonHistoryTruncated = "history-truncated"
	// ReasonEpochChanged: the server's log was lost or recreated (e.g. an
	// in-memory server restarted), so the client's position means nothing.
	ReasonEpochChanged = "epoch-changed"
	// ReasonInvalidID: the Last-Event-ID was not an id the server made.
	ReasonInvalidID = "invalid-id"
)

// Reset is Herald's signal that the events a client receives may not follow
// on from the ones it had: some may have been missed. After it the stream
// continues with what history still holds, then live events; a client that
// keeps state built from the events should rebuild it.
type Reset struct {
	// Reason is one of the Reason constants (a newer server may add others).
	Reason string `json:"reason"`
	// LastEventID is the position the client asked to resume from.
	LastEventID string `json:"lastEventId"`
}

// AsReset reports whether ev is a herald.reset event and returns what it
// says. A reset whose data is not the expected JSON still counts, with
// empty fields.
func AsReset(ev sse.Event) (Reset, bool) {
	if ev.Type != ResetEventType {
		return Reset{}, false
	}
	var r Reset
	_ = json.Unmarshal([]byte(ev.Data), &r)
	return r, true
}
