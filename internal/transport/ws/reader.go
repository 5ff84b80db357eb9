package ws

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/gobwas/ws"
)

// frameReader turns the bytes a client sends into frames, the way RFC 6455
// says a server must read them: every frame masked (and unmasked here), no
// reserved opcode or bit, control frames whole and at most 125 bytes,
// continuations only within a fragmented message, control frames allowed
// between its fragments, and a message no larger than the limit. It keeps
// an incomplete frame until the next read. It holds no buffer while no
// frame is pending.
type frameReader struct {
	limit int64

	in         []byte    // the start of a frame not whole yet
	msg        []byte    // a fragmented message being assembled
	msgOp      ws.OpCode // its opcode
	fragmented bool
}

// feed reads the frames in data (after what was kept from the last feed)
// and calls on for each control frame and each whole message, in order,
// with its unmasked payload (valid until on returns). When on returns
// false, feed stops and keeps the rest for the next feed. It returns the
// close code and reason for bytes that break the protocol; nothing more
// may be fed then.
func (fr *frameReader) feed(data []byte, on func(op ws.OpCode, p []byte) bool) *closeWith {
	if len(fr.in) > 0 {
		fr.in = append(fr.in, data...)
		data = fr.in
	}
	for len(data) > 0 {
		r := bytes.NewReader(data)
		h, err := ws.ReadHeader(r)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break // the header is not whole yet
		}
		if err != nil {
			return fr.fail(CloseProtocolError, err.Error())
		}
		state := ws.StateServerSide
		if fr.fragmented {
			state |= ws.StateFragmented
		}
		if err := ws.CheckHeader(h, state); err != nil {
			return fr.fail(CloseProtocolError, err.Error())
		}
		if h.Length > fr.limit || h.OpCode == ws.OpContinuation && int64(len(fr.msg))+h.Length > fr.limit {
			return fr.fail(CloseTooBig, fmt.Sprintf("message over %d bytes", fr.limit))
		}
		hl := len(data) - r.Len()
		if int64(len(data)-hl) < h.Length {
			break // the payload is not whole yet
		}
		end := hl + int(h.Length)
		p := data[hl:end]
		ws.Cipher(p, h.Mask, 0)
		rest := data[end:]
		goOn := true
		switch {
		case h.OpCode.IsControl():
			goOn = on(h.OpCode, p)
		case h.OpCode == ws.OpContinuation:
			fr.msg = append(fr.msg, p...)
			if h.Fin {
				msg, op := fr.msg, fr.msgOp
				fr.msg, fr.fragmented = nil, false
				goOn = on(op, msg)
			}
		case !h.Fin:
			fr.fragmented, fr.msgOp = true, h.OpCode
			fr.msg = append([]byte(nil), p...)
		default:
			goOn = on(h.OpCode, p)
		}
		data = rest
		if !goOn {
			break
		}
	}
	if len(data) == 0 {
		fr.in = nil
	} else {
		fr.in = append([]byte(nil), data...)
	}
	return nil
}

// pending reports whether whole frames may be kept (on returned false).
func (fr *frameReader) pending() bool { return len(fr.in) > 0 }

func (fr *frameReader) fail(code CloseCode, reason string) *closeWith {
	fr.in, fr.msg, fr.fragmented = nil, nil, false
	return &closeWith{code, reason}
}
