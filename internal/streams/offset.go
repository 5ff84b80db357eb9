package streams

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/heraldpush/herald/pubsub"
)

// FormatOffset renders a position of the streams broker's log as a Durable
// Streams offset: the offset as 16 lower-case hexadecimal digits, "_", the
// log's epoch. Within a stream (one epoch) offsets sort as text exactly as
// positions do, and they hold none of the characters the protocol forbids
// (",&=?/").
func FormatOffset(p pubsub.Position) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i, off := 15, p.Offset; i >= 0; i-- {
		b[i] = digits[off&15]
		off >>= 4
	}
	return string(b[:]) + "_" + p.Epoch
}

// offsetKind tells what a request's offset parameter asked for.
type offsetKind uint8

const (
	offsetStart offsetKind = iota // -1 or absent: the stream's beginning
	offsetNow                     // now: the stream's tail
	offsetAt                      // a position
)

// parseOffset parses an offset parameter strictly: "-1", "now", or an
// offset FormatOffset made (16 lower-case hex digits, "_", an epoch). An
// offset whose position is 0 means the beginning, whatever its epoch.
func parseOffset(s string) (offsetKind, pubsub.Position, error) {
	switch s {
	case "-1":
		return offsetStart, pubsub.Position{}, nil
	case "now":
		return offsetNow, pubsub.Position{}, nil
	}
	if len(s) < 18 || s[16] != '_' {
		return 0, pubsub.Position{}, fmt.Errorf("malformed offset %q: use -1, now, or a Stream-Next-Offset this server gave", clip(s))
	}
	hex, epoch := s[:16], s[17:]
	if strings.ToLower(hex) != hex {
		return 0, pubsub.Position{}, fmt.Errorf("malformed offset %q: upper-case digits", clip(s))
	}
	off, err := strconv.ParseUint(hex, 16, 64)
	if err != nil || !pubsub.ValidEpoch(epoch) {
		return 0, pubsub.Position{}, fmt.Errorf("malformed offset %q: use -1, now, or a Stream-Next-Offset this server gave", clip(s))
	}
	if off == 0 {
		return offsetStart, pubsub.Position{}, nil
	}
	return offsetAt, pubsub.Position{Epoch: epoch, Offset: off}, nil
}

// clip bounds a client-supplied string quoted in an error message.
func clip(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strconv.Quote(s)
}
