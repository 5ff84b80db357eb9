package sse

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Field names, shared by the encoder and the decoder so that the two
// directions cannot drift apart.
const (
	fieldData  = "data"
	fieldEvent = "event"
	fieldID    = "id"
	fieldRetry = "retry"
)

// ErrInvalidField is returned (wrapped) when an event's id or type cannot be
// encoded: it contains a line break (CR or LF), or, for an id, a NUL.
var ErrInvalidField = errors.New("sse: invalid field")

// Event is one server-sent event.
//
// On encoding, an empty ID or Type is omitted, and Retry is sent only when it
// is positive. On decoding, ID holds the stream's last event id at the time
// the event was dispatched (as the standard defines it), Type defaults to
// "message" and Retry is zero (see [Decoder.Retry]).
type Event struct {
	ID    string
	Type  string
	Data  string
	Retry time.Duration
	// HasID reports whether the event carried an id field, which is how an
	// encoder distinguishes "no id" from "reset the id to empty". On
	// encoding, an id field is written when ID is non-empty or HasID is set.
	HasID bool
}

// ValidID reports whether s can be sent as an event id: no CR, LF or NUL.
func ValidID(s string) error {
	if i := strings.IndexAny(s, "\r\n\x00"); i >= 0 {
		return fmt.Errorf("%w: id contains %q at byte %d", ErrInvalidField, s[i], i)
	}
	return nil
}

// ValidType reports whether s can be sent as an event type: no CR or LF.
func ValidType(s string) error {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return fmt.Errorf("%w: event type contains %q at byte %d", ErrInvalidField, s[i], i)
	}
	return nil
}

// Validate reports whether the event can be encoded without injecting fields.
func (e *Event) Validate() error {
	if err := ValidID(e.ID); err != nil {
		return err
	}
	return ValidType(e.Type)
}

// AppendTo appends the event's wire form, ending with the blank line that
// dispatches it, to dst. Data is split at every CR, LF or CRLF into one
// "data:" line each, so a decoder gets back exactly the same text with its
// line ends normalised to LF. An event with no data is still written (with
// one empty data line) so that it is dispatched.
func (e *Event) AppendTo(dst []byte) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return dst, err
	}
	if e.ID != "" || e.HasID {
		dst = appendField(dst, fieldID, e.ID)
	}
	if e.Type != "" {
		dst = appendField(dst, fieldEvent, e.Type)
	}
	if e.Retry > 0 {
		dst = append(dst, fieldRetry+": "...)
		dst = strconv.AppendInt(dst, e.Retry.Milliseconds(), 10)
		dst = append(dst, '\n')
	}
	dst = AppendData(dst, e.Data)
	return append(dst, '\n'), nil
}

// WriteTo writes the event's wire form to w. It implements [io.WriterTo].
func (e *Event) WriteTo(w io.Writer) (int64, error) {
	b, err := e.AppendTo(make([]byte, 0, len(e.Data)+len(e.ID)+len(e.Type)+32))
	if err != nil {
		return 0, err
	}
	n, err := w.Write(b)
	return int64(n), err
}

// AppendData appends data as "data:" lines, one for each line of data, where
// lines end at CR, LF or CRLF. It writes at least one line.
func AppendData(dst []byte, data string) []byte {
	for {
		i := indexLineBreak(data)
		if i < 0 {
			return appendField(dst, fieldData, data)
		}
		dst = appendField(dst, fieldData, data[:i])
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

// AppendDataTight appends data as AppendData does, but writes "data:"
// without the separator space, except before a line that starts with a
// space (which a decoder would otherwise strip): the form some protocols'
// clients match byte for byte (Durable Streams). A decoder reads the same
// text from either form.
func AppendDataTight(dst []byte, data string) []byte {
	for {
		i := indexLineBreak(data)
		line := data
		if i >= 0 {
			line = data[:i]
		}
		dst = append(dst, fieldData...)
		dst = append(dst, ':')
		if len(line) > 0 && line[0] == ' ' {
			dst = append(dst, ' ')
		}
		dst = append(dst, line...)
		dst = append(dst, '\n')
		if i < 0 {
			return dst
		}
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

// indexLineBreak returns the index of the first CR or LF in s, or -1. Two
// IndexByte calls (vectorized) beat IndexAny's byte loop on event data.
func indexLineBreak(s string) int {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		i = len(s)
	}
	if j := strings.IndexByte(s[:i], '\r'); j >= 0 {
		return j
	}
	if i == len(s) {
		return -1
	}
	return i
}

// AppendComment appends a comment line (": text"), which a decoder ignores;
// servers send them as keep-alives. Line breaks in text start further
// comment lines, so a comment cannot inject a field.
func AppendComment(dst []byte, text string) []byte {
	for {
		i := strings.IndexAny(text, "\r\n")
		if i < 0 {
			break
		}
		dst = appendComment(dst, text[:i])
		if text[i] == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++
		}
		text = text[i+1:]
	}
	return appendComment(dst, text)
}

func appendComment(dst []byte, text string) []byte {
	dst = append(dst, ':')
	if text != "" {
		dst = append(dst, ' ')
		dst = append(dst, text...)
	}
	return append(dst, '\n')
}

// AppendRetry appends a retry field that sets the client's reconnection
// time, in its own block so that it dispatches no event.
func AppendRetry(dst []byte, d time.Duration) []byte {
	dst = append(dst, fieldRetry+": "...)
	dst = strconv.AppendInt(dst, d.Milliseconds(), 10)
	return append(dst, '\n', '\n')
}

// AppendID appends an id field in a block of its own. A client takes the id
// as its last event id without dispatching an event, so a server can tell a
// client where it stands even when no event has been sent yet.
func AppendID(dst []byte, id string) ([]byte, error) {
	if err := ValidID(id); err != nil {
		return dst, err
	}
	dst = appendField(dst, fieldID, id)
	return append(dst, '\n'), nil
}

func appendField(dst []byte, name, value string) []byte {
	dst = append(dst, name...)
	dst = append(dst, ':')
	// A value that starts with a space would lose it to the decoder, which
	// strips exactly one: always writing the separator space keeps it.
	dst = append(dst, ' ')
	dst = append(dst, value...)
	return append(dst, '\n')
}
