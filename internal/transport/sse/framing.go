package sse

import (
	"encoding/json"
	"strconv"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/transport"
	ssewire "github.com/heraldpush/herald/sse"
)

// framing is one stream's wire form: the events (Encode, or the stream's
// own encoder), keep-alive comments, herald.auth-expired and the end; on
// the lean path each turn's bytes are one HTTP/1.1 chunk, written by hand.
type framing struct {
	chunked bool
	encode  func(*hub.Event) []byte
	finish  func(error) bool
	done    func()
}

var (
	crlf           = []byte("\r\n")
	keepAlive      = []byte(":\n\n")
	keepAliveChunk = []byte("3\r\n:\n\n\r\n")
	lastChunk      = []byte("0\r\n\r\n")
	authExpired    = func() []byte {
		ev := ssewire.Event{Type: transport.AuthExpiredEventType, Data: transport.AuthExpiredData}
		b, _ := ev.AppendTo(nil)
		return b
	}()
	authExpiredChunk = append(appendChunk(nil, authExpired), lastChunk...)
)

func (f *framing) Turn(c *transport.Conn, b *transport.Batch, due transport.Due) transport.Next {
	return transport.OneWay(c, b, due, f)
}

func (f *framing) Closed(*transport.Conn) {
	if f.done != nil {
		go f.done()
	}
}

func (f *framing) Events(b *transport.Batch, evs []*hub.Event) {
	mark, payload := b.Mark(), 0
	for _, ev := range evs {
		var p []byte
		if f.encode != nil {
			p = f.encode(ev)
		} else {
			p = Encode(ev)
		}
		if len(p) > 0 {
			b.Event(p, len(p))
			payload += len(p)
		}
	}
	if !f.chunked || payload == 0 {
		return
	}
	hdr := b.Alloc(18)[:0]
	hdr = strconv.AppendUint(hdr, uint64(payload), 16)
	hdr = append(hdr, '\r', '\n')
	b.Insert(mark, hdr, 0)
	b.Add(crlf, 0)
}

func (f *framing) KeepAlive(b *transport.Batch) {
	if f.chunked {
		b.Add(keepAliveChunk, 3)
	} else {
		b.Add(keepAlive, 3)
	}
}

func (f *framing) Expired(b *transport.Batch) {
	if f.chunked {
		b.Add(authExpiredChunk, len(authExpired))
	} else {
		b.Add(authExpired, len(authExpired))
	}
}

func (f *framing) End(b *transport.Batch, err error) transport.Next {
	if f.finish != nil && !f.finish(err) {
		return transport.Abort
	}
	if f.chunked {
		b.Add(lastChunk, 0)
	}
	return transport.End
}

// encKey keys the SSE form of events in hub.Event.Memo; bodyKey keys the
// form of a message without its id (see hub.Event.Shared).
type (
	encKey  struct{}
	bodyKey struct{}
)

// Encode returns ev's text/event-stream form, computed once per event for
// all its subscribers: a message as an event with its id, type and data, a
// position as an id-only event, a reset as a herald.reset event. An event
// with an id of its own subscriber's (a vector: see hub.Event.Shared) is
// its id field ahead of the shared event's other fields, which are
// encoded once.
func Encode(ev *hub.Event) []byte {
	if base := ev.Shared(); base != nil {
		return withID(ev, base.Memo(bodyKey{}, func() []byte { return encode(base, false) }))
	}
	return ev.Memo(encKey{}, func() []byte { return encode(ev, true) })
}

// withID returns "id: <ev's id>" followed by body, the other fields of
// the event (their order in an SSE event does not matter).
func withID(ev *hub.Event, body []byte) []byte {
	id := ev.ID()
	b, err := ssewire.AppendID(make([]byte, 0, len(id)+len(body)+6), id)
	if err != nil {
		panic("sse: unencodable event id: " + err.Error()) // the hub's ids are valid
	}
	return append(b[:len(b)-1], body...) // without the blank line that ends an id-only block
}

// encode returns ev's form, with its id or (a message only) without.
func encode(ev *hub.Event, withID bool) []byte {
	var (
		b   []byte
		err error
	)
	switch ev.Kind {
	case hub.KindMessage:
		e := ssewire.Event{Type: ev.Msg.Type, Data: ev.Msg.Data}
		if withID {
			e.ID = ev.ID()
		}
		// Room for the fields of a one-line event: one allocation.
		buf := make([]byte, 0, len(e.ID)+len(e.Type)+len(e.Data)+24)
		b, err = e.AppendTo(buf)
	case hub.KindPosition:
		b, err = ssewire.AppendID(nil, ev.ID())
	case hub.KindReset:
		data, _ := json.Marshal(ev.Reset)
		e := ssewire.Event{Type: hub.ResetEventType, Data: string(data)}
		b, err = e.AppendTo(nil)
	}
	if err != nil {
		// Publishers validate types and ids; reaching this is a bug.
		panic("sse: unencodable event: " + err.Error())
	}
	return b
}
