package streams

import (
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/transport/sse"
	"github.com/heraldpush/herald/pubsub"
	ssewire "github.com/heraldpush/herald/sse"
)

// sseEncoder turns one SSE read's events into the protocol's "data" and
// "control" events. It is called on the stream's owner, one event at a
// time (sse.Stream.Encode), and keeps the read's place.
type sseEncoder struct {
	json, base64 bool
	depth        int    // the segment of the stream's own data
	startTail    Offset // the stream's tail when the read began
	cur          Offset // the offset the client has reached
	upToDate     bool   // the last control said upToDate (or closed)
	cursor       string
}

// data appends a data event for one message's bytes.
func (e *sseEncoder) data(b []byte, data string) []byte {
	b = append(b, "event: data\n"...)
	switch {
	case e.base64:
		b = append(b, "data:"...)
		b = base64.StdEncoding.AppendEncode(b, []byte(data))
		b = append(b, '\n')
	case e.json:
		b = ssewire.AppendDataTight(b, "["+data+"]")
	default:
		b = ssewire.AppendDataTight(b, data)
	}
	return append(b, '\n')
}

// control appends a control event at the client's offset.
func (e *sseEncoder) control(b []byte, upToDate, closed bool) []byte {
	b = append(b, "event: control\ndata:{\"streamNextOffset\":\""...)
	b = append(b, e.cur.String()...)
	b = append(b, '"')
	if closed {
		b = append(b, `,"streamClosed":true`...)
		upToDate = true
	} else {
		b = append(b, `,"streamCursor":"`...)
		b = append(b, e.cursor...)
		b = append(b, '"')
	}
	if upToDate {
		b = append(b, `,"upToDate":true`...)
	}
	e.upToDate = upToDate
	return append(b, "}\n\n"...)
}

// message encodes one message of the stream: its data, if any, then a
// control event. An inherited message (a fork's source's) never closes
// the read.
func (e *sseEncoder) message(b []byte, m *pubsub.Message, seg int, inherited bool) []byte {
	if m.Meta[metaOp] == opDelete {
		return b // the stream was deleted: its read ends
	}
	e.cur = Offset{Seg: seg, Pos: m.Pos}
	if m.Data != "" {
		b = e.data(b, m.Data)
	} else if inherited {
		return b
	}
	return e.control(b, !inherited && !e.cur.Less(e.startTail), m.Final && !inherited)
}

// encode is the read's sse.Stream.Encode.
func (e *sseEncoder) encode(ev *hub.Event) []byte {
	switch ev.Kind {
	case hub.KindMessage:
		return e.message(nil, ev.Msg, e.depth, false)
	case hub.KindPosition:
		// The end of the catch-up: the client is up to date.
		if !e.upToDate {
			return e.control(nil, true, false)
		}
	}
	return nil
}

// sse serves a live SSE read from the position after: the data after it
// (the inherited data of a fork first), then live appends, each followed by
// a control event, until the stream is closed or deleted or the client
// leaves.
func (h *Handler) sse(w http.ResponseWriter, r *http.Request, topic string, in Info, after Offset, clientCursor string) {
	own := ownStart(in, after)
	enc := &sseEncoder{json: isJSON(in.ContentType), base64: !isText(in.ContentType), depth: in.Depth, startTail: in.TailOffset(), cur: own,
		cursor: nextCursor(time.Now(), clientCursor)}
	hdr := w.Header()
	if enc.base64 {
		hdr.Set("Stream-SSE-Data-Encoding", "base64")
	}
	st := sse.Stream{ContentType: "text/event-stream", NoRetry: true, Encode: enc.encode}
	// A fork's inherited data comes from its sources' logs, ahead of its
	// own.
	if in.ForkFrom != "" && after.Less(in.ForkAt) {
		items, err := h.Service.readInherited(r.Context(), in, after)
		if err != nil {
			fail(w, r, err)
			return
		}
		for _, it := range items {
			st.Preamble = enc.message(st.Preamble, it.m, it.seg, true)
		}
	}
	if in.Closed && !own.Less(in.TailOffset()) {
		// Nothing more will come: the end, at once.
		events := [][]byte{enc.control(nil, true, true)}
		h.SSE.WriteStream(w, st, events...)
		return
	}
	sub, err := h.Service.hub.Subscribe(r.Context(), hub.Request{Topics: []string{topic}, LastEventID: own.Pos.String()})
	if errors.Is(err, hub.ErrFinished) {
		// Closed meanwhile, and the client has it all.
		in, err = h.Service.Stat(r.Context(), topic, false)
		if err != nil {
			fail(w, r, err)
			return
		}
		enc.cur = in.TailOffset()
		h.SSE.WriteStream(w, st, enc.control(nil, true, true))
		return
	}
	if err != nil {
		h.SSE.Refuse(w, r, err)
		return
	}
	// The read ends cleanly after SSEMaxAge (§8.2: about a minute), and
	// the client reconnects from its last offset.
	timer := time.AfterFunc(h.sseMaxAge(), sub.End)
	st.Done = func() { timer.Stop() }
	h.SSE.Serve(w, r, sub, st)
}
