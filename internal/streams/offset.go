package streams

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/heraldpush/herald/pubsub"
)

// Offset is a place in a stream: a position of the streams broker's log,
// and the segment of the stream it is in. A stream that is no fork has one
// segment, 0. A fork's own data is its segment Depth (its source's depth
// plus one), and the data it inherits keeps its sources' segments and
// positions, which may be on other shards of the broker, with other
// epochs: the segment comes first, so that a fork's offsets still sort.
type Offset struct {
	Seg int
	Pos pubsub.Position
}

// Start is the offset before a stream's first byte (the protocol's -1).
var Start = Offset{Seg: -1}

// IsStart reports whether o is Start.
func (o Offset) IsStart() bool { return o.Seg < 0 }

// Less reports whether o comes before p in a stream. Start comes before
// every other offset.
func (o Offset) Less(p Offset) bool {
	if o.Seg != p.Seg {
		return o.Seg < p.Seg
	}
	return o.Pos.Offset < p.Pos.Offset
}

// maxDepth bounds a chain of forks (the segment's two hex digits).
const maxDepth = 255

// String renders o as a Durable Streams offset: its segment as 2
// lower-case hexadecimal digits and its position's offset as 16, "_", the
// position's epoch ("00000000000000002a_k3v9x0q1aa"). Within a stream,
// offsets sort as text exactly as Less orders them, and they hold none of
// the characters the protocol forbids (",&=?/"). Start renders as "-1".
func (o Offset) String() string {
	if o.IsStart() {
		return "-1"
	}
	const digits = "0123456789abcdef"
	var b [18]byte
	b[0], b[1] = digits[o.Seg>>4&15], digits[o.Seg&15]
	for i, off := 17, o.Pos.Offset; i >= 2; i-- {
		b[i] = digits[off&15]
		off >>= 4
	}
	return string(b[:]) + "_" + o.Pos.Epoch
}

// offsetKind tells what a request's offset parameter asked for.
type offsetKind uint8

const (
	offsetStart offsetKind = iota // -1 or absent: the stream's beginning
	offsetNow                     // now: the stream's tail
	offsetAt                      // an offset
)

// parseOffset parses an offset parameter strictly: "-1", "now", or an
// offset Offset.String made (18 lower-case hex digits, "_", an epoch). An
// offset of position 0 means the beginning, whatever its epoch; so does
// the 16-digit zero offset other servers give ("0000000000000000_0...").
func parseOffset(s string) (offsetKind, Offset, error) {
	switch s {
	case "-1":
		return offsetStart, Start, nil
	case "now":
		return offsetNow, Offset{}, nil
	}
	bad := fmt.Errorf("malformed offset %s: use -1, now, or a Stream-Next-Offset this server gave", clip(s))
	if len(s) == 33 && strings.Trim(s, "0") == "_" && s[16] == '_' {
		return offsetStart, Start, nil
	}
	if len(s) < 20 || s[18] != '_' {
		return 0, Offset{}, bad
	}
	hex, epoch := s[:18], s[19:]
	if strings.ToLower(hex) != hex || !pubsub.ValidEpoch(epoch) {
		return 0, Offset{}, bad
	}
	seg, err1 := strconv.ParseUint(hex[:2], 16, 8)
	off, err2 := strconv.ParseUint(hex[2:], 16, 64)
	if err1 != nil || err2 != nil {
		return 0, Offset{}, bad
	}
	if off == 0 {
		return offsetStart, Start, nil
	}
	return offsetAt, Offset{Seg: int(seg), Pos: pubsub.Position{Epoch: epoch, Offset: off}}, nil
}

// clip bounds a client-supplied string quoted in an error message.
func clip(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strconv.Quote(s)
}
