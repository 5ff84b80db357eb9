package testkit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/heraldpush/herald/sse"
)

// Block is one blank-line-terminated block of a text/event-stream as the
// server wrote it. Unlike an EventSource, a block reader reports every
// block: comments, retry hints and id-only position markers too. Its
// fields are read by the public decoder (sse.Decoder).
type Block struct {
	// ID is the stream's last event id after the block, as an EventSource
	// keeps it: the block's id field if it has one (HasID), otherwise the
	// one carried over from an earlier block.
	ID    string
	HasID bool
	// Type is the event type of a block with data ("message" when it has
	// no event field); "" for a block without data.
	Type string
	// Data is the event's data; HasData says whether the block has any
	// data field, which makes it an event an EventSource dispatches.
	Data    string
	HasData bool
	// Retry is the block's retry field (HasRetry).
	Retry    time.Duration
	HasRetry bool
	// Comments holds the text of the block's comment lines.
	Comments []string
	// Raw is the block as written, without the blank line that ends it.
	Raw string
}

// Event returns the block as the event an EventSource dispatches.
func (b Block) Event() sse.Event {
	return sse.Event{ID: b.ID, HasID: b.HasID, Type: b.Type, Data: b.Data}
}

func (b Block) String() string {
	var s []string
	if b.HasID {
		s = append(s, "id:"+b.ID)
	}
	if b.HasData {
		s = append(s, "event:"+b.Type, "data:"+b.Data)
	}
	if b.HasRetry {
		s = append(s, "retry:"+b.Retry.String())
	}
	for _, c := range b.Comments {
		s = append(s, "comment:"+c)
	}
	return "{" + strings.Join(s, " ") + "}"
}

// BlockReader reads a text/event-stream block by block. Herald writes LF
// line ends only: a line holding a CR is an error, not a line end.
type BlockReader struct {
	br     *bufio.Reader
	lastID string
}

// NewBlockReader returns a BlockReader of r.
func NewBlockReader(r io.Reader) *BlockReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	return &BlockReader{br: br}
}

// noID stands for "no id field" in the decoder's last event id: an id
// holding NUL is ignored, so no field can set it.
const noID = "\x00"

// Next returns the next block; blank lines between blocks are skipped. It
// returns io.EOF at a clean end of the stream (between blocks) and an
// error wrapping io.ErrUnexpectedEOF inside a block.
func (r *BlockReader) Next() (Block, error) {
	var raw bytes.Buffer
	for {
		line, err := r.br.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && (len(line) > 0 || raw.Len() > 0) {
				err = fmt.Errorf("stream ended inside a block (%q): %w", raw.String()+string(line), io.ErrUnexpectedEOF)
			}
			return Block{}, err
		}
		if bytes.IndexByte(line, '\r') >= 0 {
			return Block{}, fmt.Errorf("line %q holds a CR: Herald writes LF line ends only", line)
		}
		if len(line) == 1 {
			if raw.Len() == 0 {
				continue
			}
			return r.decode(raw.String()), nil
		}
		raw.Write(line)
	}
}

// decode reads the fields of raw, a whole block, with the public decoder.
func (r *BlockReader) decode(raw string) Block {
	b := Block{Raw: raw}
	d := sse.NewDecoder(strings.NewReader(raw + "\n"))
	d.OnComment = func(text string) { b.Comments = append(b.Comments, text) }
	d.SetLastEventID(noID)
	if ev, err := d.Next(); err == nil {
		b.HasData, b.Type, b.Data = true, ev.Type, ev.Data
	}
	if id := d.LastEventID(); id != noID {
		r.lastID, b.HasID = id, true
	}
	b.ID = r.lastID
	b.Retry, b.HasRetry = d.Retry(), d.HasRetry()
	return b
}
