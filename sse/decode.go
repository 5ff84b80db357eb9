package sse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"time"
	"unicode/utf8"
)

// DefaultMaxEventSize is the default limit on the size of one line and of one
// event's data, for a [Decoder] whose MaxEventSize is zero.
const DefaultMaxEventSize = 8 << 20

// ErrTooLarge is returned (wrapped) when a line or an event's data exceeds the
// decoder's size limit. The stream cannot be resumed after it.
var ErrTooLarge = errors.New("sse: event too large")

// Decoder reads events from a text/event-stream, following the WHATWG
// "event stream interpretation" rules: lines end at CRLF, LF or CR (also when
// the CR and the LF arrive in different reads), one leading byte order mark
// is skipped, invalid UTF-8 becomes U+FFFD, comments and unknown fields are
// ignored, a field without a colon has an empty value, "data" lines are joined
// with LF, an "id" containing NUL is ignored, "retry" is taken only when it is
// all ASCII digits, and an event still pending at the end of the stream is
// discarded. Comments are given to OnComment when it is set.
//
// A Decoder is not safe for concurrent use.
type Decoder struct {
	// MaxEventSize limits the length of one line (without its line end)
	// and the size of one event's data (its data lines, each with the LF
	// that joins it to the next), in bytes. Zero means DefaultMaxEventSize.
	MaxEventSize int

	// OnComment, if set, is called from Next with the text of each comment
	// line (a line that starts with a colon), in stream order: what follows
	// the colon, less one leading space, as a field value is read, with
	// invalid UTF-8 replaced. The standard has comments ignored, and servers
	// send them as keep-alives or notes; this is for callers who want to
	// see them. Default nil: comments are skipped.
	OnComment func(text string)

	r       io.Reader
	buf     []byte
	start   int
	end     int
	err     error // sticky read error
	bomDone bool
	skipLF  bool // the previous line ended with a CR at the end of a read

	data        []byte
	hasData     bool
	eventType   string
	idBuf       string
	lastEventID string
	retry       time.Duration
	hasRetry    bool
	sawID       bool
}

// NewDecoder returns a Decoder that reads from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: r}
}

// LastEventID returns the stream's last event id: the value of the most
// recent id field taken before a blank line, whether or not that blank line
// dispatched an event.
func (d *Decoder) LastEventID() string { return d.lastEventID }

// SetLastEventID sets the stream's last event id before decoding starts, as
// an EventSource carries it over when it reconnects: events that come
// without an id field have it as their ID, and LastEventID returns it until
// the stream sends an id of its own.
func (d *Decoder) SetLastEventID(id string) {
	d.idBuf = id
	d.lastEventID = id
}

// Retry returns the reconnection time most recently set by a retry field, or
// zero if the stream has not set one.
func (d *Decoder) Retry() time.Duration { return d.retry }

// HasRetry reports whether the stream has set the reconnection time with a
// retry field, which tells "retry: 0" from no retry field at all.
func (d *Decoder) HasRetry() bool { return d.hasRetry }

// Next returns the next dispatched event. It returns io.EOF when the stream
// ends cleanly (a pending, undispatched event is discarded then, as the
// standard requires) and any other error as it comes.
func (d *Decoder) Next() (Event, error) {
	for {
		line, err := d.readLine()
		if err != nil {
			return Event{}, err
		}
		if len(line) == 0 {
			if ev, ok := d.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		if err := d.processLine(line); err != nil {
			return Event{}, err
		}
	}
}

func (d *Decoder) max() int {
	if d.MaxEventSize > 0 {
		return d.MaxEventSize
	}
	return DefaultMaxEventSize
}

func (d *Decoder) dispatch() (Event, bool) {
	d.lastEventID = d.idBuf
	sawID := d.sawID
	d.sawID = false
	if !d.hasData {
		d.eventType = ""
		return Event{}, false
	}
	data := d.data
	if n := len(data); n > 0 && data[n-1] == '\n' {
		data = data[:n-1]
	}
	ev := Event{ID: d.lastEventID, HasID: sawID, Type: d.eventType, Data: string(data)}
	if ev.Type == "" {
		ev.Type = "message"
	}
	d.data = d.data[:0]
	d.hasData = false
	d.eventType = ""
	return ev, true
}

func (d *Decoder) processLine(line []byte) error {
	if line[0] == ':' {
		// A comment: ignored, unless the caller asked for it.
		if d.OnComment != nil {
			text := line[1:]
			if len(text) > 0 && text[0] == ' ' {
				text = text[1:]
			}
			d.OnComment(toValidUTF8(text))
		}
		return nil
	}
	var field, value []byte
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	} else {
		field = line
	}
	switch string(field) {
	case fieldEvent:
		d.eventType = toValidUTF8(value)
	case fieldData:
		if len(d.data)+len(value)+1 > d.max() {
			return fmt.Errorf("%w: data over %d bytes", ErrTooLarge, d.max())
		}
		if utf8.Valid(value) {
			d.data = append(d.data, value...)
		} else {
			d.data = append(d.data, toValidUTF8(value)...)
		}
		d.data = append(d.data, '\n')
		d.hasData = true
	case fieldID:
		if bytes.IndexByte(value, 0) < 0 {
			d.idBuf = toValidUTF8(value)
			d.sawID = true
		}
	case fieldRetry:
		if ms, ok := parseDigits(value); ok {
			d.retry = time.Duration(ms) * time.Millisecond
			d.hasRetry = true
		}
	}
	return nil
}

// parseDigits parses a non-empty run of ASCII digits; values too large for a
// duration are clamped rather than rejected, since the field was valid.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	ms, err := strconv.ParseInt(string(b), 10, 64)
	const maxMS = int64(time.Duration(1<<63-1) / time.Millisecond)
	if err != nil || ms > maxMS {
		ms = maxMS
	}
	return ms, true
}

var bom = []byte("\xEF\xBB\xBF")

// readLine returns the next line without its line end. The slice is valid
// until the next call.
func (d *Decoder) readLine() ([]byte, error) {
	for {
		if d.skipLF && d.start < d.end {
			if d.buf[d.start] == '\n' {
				d.start++
			}
			d.skipLF = false
		}
		if !d.bomDone {
			avail := d.buf[d.start:d.end]
			switch {
			case len(avail) >= len(bom):
				d.bomDone = true
				if bytes.HasPrefix(avail, bom) {
					d.start += len(bom)
				}
			case len(avail) > 0 && !bytes.HasPrefix(bom, avail), d.err != nil:
				d.bomDone = true // too short or not a BOM prefix: no BOM
			}
		}
		if d.bomDone {
			win := d.buf[d.start:d.end]
			if i := indexLineEnd(win); i >= 0 {
				if i > d.max() {
					// Checked here as well as before a read, so that
					// the limit does not depend on how the stream was
					// split into reads.
					d.err = fmt.Errorf("%w: line over %d bytes", ErrTooLarge, d.max())
					return nil, d.err
				}
				line := win[:i]
				d.start += i + 1
				if win[i] == '\r' {
					if i+1 < len(win) {
						if win[i+1] == '\n' {
							d.start++
						}
					} else {
						d.skipLF = true
					}
				}
				return line, nil
			}
		}
		if d.bomDone && d.end-d.start > d.max() {
			d.err = fmt.Errorf("%w: line over %d bytes", ErrTooLarge, d.max())
			return nil, d.err
		}
		if d.err != nil {
			// A partial line at the end of the stream is discarded along
			// with any pending event.
			return nil, d.err
		}
		d.fill()
	}
}

func indexLineEnd(b []byte) int {
	for i, c := range b {
		if c == '\n' || c == '\r' {
			return i
		}
	}
	return -1
}

func (d *Decoder) fill() {
	if d.start > 0 {
		d.end = copy(d.buf, d.buf[d.start:d.end])
		d.start = 0
	}
	if d.end == len(d.buf) {
		n := 2 * len(d.buf)
		if n == 0 {
			n = 4096
		}
		nb := make([]byte, n)
		copy(nb, d.buf[:d.end])
		d.buf = nb
	}
	for range 100 {
		n, err := d.r.Read(d.buf[d.end:])
		d.end += n
		if err != nil {
			d.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	d.err = io.ErrNoProgress
}

// Read returns an iterator over the events of the stream r. It stops at the
// end of the stream; any other error is yielded once, as the last pair.
//
//	for ev, err := range sse.Read(resp.Body) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(ev.Type, ev.Data)
//	}
func Read(r io.Reader) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		d := NewDecoder(r)
		for {
			ev, err := d.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(Event{}, err)
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
	}
}

// toValidUTF8 decodes b as the WHATWG "UTF-8 decode" does: each maximal
// subpart of an ill-formed sequence becomes one U+FFFD.
func toValidUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	out := make([]byte, 0, len(b)+8)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			out = append(out, b[i:i+size]...)
			i += size
			continue
		}
		out = append(out, "\uFFFD"...)
		i += maximalSubpart(b[i:])
	}
	return string(out)
}

// maximalSubpart returns the length of the maximal subpart of an ill-formed
// UTF-8 sequence at the start of b (at least 1), per the Unicode standard's
// "U+FFFD substitution of maximal subparts", which WHATWG's decoder follows.
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for ; n <= need && n < len(b); n++ {
		if b[n] < lo || b[n] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return n
}
