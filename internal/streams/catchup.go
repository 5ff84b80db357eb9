package streams

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/heraldpush/herald/pubsub"
)

// defaultReadBuffer is how much of a catch-up read's data is taken from the
// store per read transaction by default (Handler.ReadBuffer).
const defaultReadBuffer = 1 << 20

// readBuffers holds catch-up buffers of the default size.
var readBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, defaultReadBuffer)
	return &b
}}

// planPage is how many messages a catch-up read measures, or copies, per
// read transaction at most (a variable for tests).
var planPage = 1 << 14

// errStop ends a store read from its callback.
var errStop = errors.New("streams: enough read")

// storedPage describes the data of a catch-up response without holding it.
type storedPage struct {
	count, size, parts int // messages, bytes of data, messages with data
	last               pubsub.Position
	upToDate           bool
}

// catchUpStored answers a catch-up read of the stream's own data straight
// from a store that can hand its messages over without copies: a first
// read of the store measures the response (which messages, how many
// bytes: the headers need both), then the data is copied from the store
// into one reused buffer, ReadBuffer bytes per read transaction, and
// written out between transactions, so that a slow client never holds a
// transaction open. Responses, headers and offsets are those of catchUp's
// other path. It reports false, having written nothing, when the store
// cannot read the topic this way (errors.ErrUnsupported), or when dataOnly
// (a long-poll, which waits instead) and there is no data to answer with.
func (h *Handler) catchUpStored(w http.ResponseWriter, r *http.Request, ts pubsub.TopicStreamer, topic string, in Info, after Offset, cursor string, dataOnly bool) bool {
	ctx := r.Context()
	from := ownStart(in, after).Pos
	maxBytes := h.chunk()
	p := storedPage{upToDate: true}
	// The same page as Service.Read's: up to maxBytes (at least one
	// message), up to date when nothing follows it; measured planPage
	// messages per read transaction, so that small appends do not hold
	// one open for long either.
	for cur := from; ; cur = p.last {
		n := 0
		_, err := ts.ReadTopicTo(ctx, topic, cur, planPage, func(m *pubsub.Message) error {
			if p.count > 0 && (p.size >= maxBytes || p.size+len(m.Data) > maxBytes) {
				p.upToDate = false
				return errStop
			}
			n++
			p.count++
			p.size += len(m.Data)
			if m.Data != "" {
				p.parts++
			}
			p.last = m.Pos
			return nil
		})
		switch {
		case errors.Is(err, errors.ErrUnsupported):
			return false
		case err != nil && !errors.Is(err, errStop):
			fail(w, r, wrapRead(topic, err))
			return true
		}
		if err != nil || n < planPage {
			break
		}
	}
	if dataOnly && p.parts == 0 {
		return false
	}
	next := after
	if p.count > 0 {
		next = Offset{Seg: in.Depth, Pos: p.last}
	}
	if !h.writeHead(w, r, in, after, next, p.upToDate, cursor, p.size, p.parts) {
		return true
	}
	json := isJSON(in.ContentType)
	if p.parts == 0 {
		if json {
			_, _ = io.WriteString(w, "[]")
		}
		return true
	}
	if err := h.writeStored(w, r, ts, topic, from, p, json); err != nil {
		// The headers are out: a response shorter than its Content-Length
		// makes the server close the connection, and the client see it.
		h.Service.log.Warn("streams: catch-up read cut short", "stream", topic, "err", err)
	}
	return true
}

// writeStored writes the data of the page p, which follows the position
// from, copying it from the store into a buffer of ReadBuffer bytes per
// read transaction and writing the buffer out between transactions (a
// message larger than the buffer is taken in several); json: the stream's
// messages are JSON values, written as one array.
func (h *Handler) writeStored(w http.ResponseWriter, r *http.Request, ts pubsub.TopicStreamer, topic string, from pubsub.Position, p storedPage, json bool) error {
	buf, release := h.readBuffer()
	defer release()
	var (
		after   = from
		skip    int  // bytes of the current message's data already written
		comma   bool // the comma before the current message is written
		parts   int  // messages whose data is written
		written int
		done    bool
	)
	if json {
		n, err := io.WriteString(w, "[")
		if err != nil {
			return err
		}
		written += n
	}
	for !done {
		buf = buf[:0]
		seen := 0
		_, err := ts.ReadTopicTo(r.Context(), topic, after, planPage, func(m *pubsub.Message) error {
			seen++
			if p.last.Offset < m.Pos.Offset {
				return errShort
			}
			if d := m.Data; d != "" {
				if json && parts > 0 && skip == 0 && !comma {
					if len(buf) == cap(buf) {
						return errStop
					}
					buf = append(buf, ',')
					comma = true
				}
				room := cap(buf) - len(buf)
				if rest := d[skip:]; len(rest) > room {
					buf = append(buf, rest[:room]...)
					skip += room
					return errStop
				}
				buf = append(buf, d[skip:]...)
				parts++
			}
			skip, comma, after = 0, false, m.Pos
			if m.Pos.Offset == p.last.Offset {
				done = true
				return errStop
			}
			return nil
		})
		switch {
		case err == nil && seen == planPage:
			// As many messages as one transaction reads: on.
		case err == nil:
			// The store ended before the page did: it lost messages
			// since the page was measured (the stream was deleted).
			err = errShort
			fallthrough
		case !errors.Is(err, errStop):
			return wrapRead(topic, err)
		}
		n, err := w.Write(buf)
		written += n
		if err != nil {
			return err
		}
	}
	if json {
		n, err := io.WriteString(w, "]")
		if err != nil {
			return err
		}
		written += n
	}
	if want := p.size + jsonFrame(json, p.parts); written != want {
		return fmt.Errorf("wrote %d bytes of %d", written, want)
	}
	return nil
}

// jsonFrame is what a JSON response adds to its messages' data: the
// brackets and the commas between parts.
func jsonFrame(json bool, parts int) int {
	if !json {
		return 0
	}
	return 2 + max(parts-1, 0)
}

// errShort: the store no longer has all of a measured page.
var errShort = errors.New("the stream lost data being read (deleted?)")

// wrapRead wraps an error of reading topic as Service.Read does.
func wrapRead(topic string, err error) error {
	return fmt.Errorf("streams: read %s: %w", topic, err)
}

// readBuffer returns an empty buffer of ReadBuffer bytes, and the function
// that gives it back.
func (h *Handler) readBuffer() ([]byte, func()) {
	if h.ReadBuffer <= 0 || h.ReadBuffer == defaultReadBuffer {
		bp := readBuffers.Get().(*[]byte)
		return (*bp)[:0], func() { readBuffers.Put(bp) }
	}
	return make([]byte, 0, h.ReadBuffer), func() {}
}
