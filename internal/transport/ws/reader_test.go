package ws

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/gobwas/ws"
)

// feedAll feeds copies of chunks (the reader unmasks in place) to a new
// reader and records what it reports.
func feedAll(limit int64, chunks ...[]byte) (got []string, fail *closeWith) {
	fr := &frameReader{limit: limit}
	for _, c := range chunks {
		c = bytes.Clone(c)
		if fail = fr.feed(c, func(op ws.OpCode, p []byte) bool {
			got = append(got, fmt.Sprintf("%d:%q", op, p))
			return true
		}); fail != nil {
			return got, fail
		}
	}
	return got, nil
}

// FuzzFrameReader feeds arbitrary bytes to the frame reader in one piece
// and in two (stream parsers break at chunk boundaries): it never panics,
// reports the same frames and the same failure either way, and never hands
// over a message over its limit.
func FuzzFrameReader(f *testing.F) {
	masked := func(fs ...ws.Frame) []byte {
		var b []byte
		for _, fr := range fs {
			b = append(b, ws.MustCompileFrame(ws.MaskFrameWith(fr, [4]byte{1, 2, 3, 4}))...)
		}
		return b
	}
	f.Add(masked(ws.NewTextFrame([]byte(`{"type":"ping"}`))), 3)
	f.Add(masked(ws.NewFrame(ws.OpText, false, []byte("ab")), ws.NewPingFrame([]byte("p")), ws.NewFrame(ws.OpContinuation, true, []byte("cd"))), 9)
	f.Add(masked(ws.NewCloseFrame(ws.NewCloseFrameBody(1000, "bye"))), 1)
	f.Add(masked(ws.NewTextFrame(bytes.Repeat([]byte("x"), 200))), 100)
	f.Add(ws.MustCompileFrame(ws.NewTextFrame([]byte("unmasked"))), 2)
	f.Add([]byte{0x81, 0xff, 0, 0, 0, 0, 0, 0, 1, 0, 1, 2, 3, 4}, 5)
	const limit = 128
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		whole, wholeFail := feedAll(limit, data)
		if split < 0 {
			split = -split
		}
		split %= len(data) + 1
		parts, partsFail := feedAll(limit, data[:split], data[split:])
		if fmt.Sprint(whole) != fmt.Sprint(parts) || (wholeFail == nil) != (partsFail == nil) ||
			wholeFail != nil && *wholeFail != *partsFail {
			t.Fatalf("whole: %v %v; in two at %d: %v %v", whole, wholeFail, split, parts, partsFail)
		}
		fr := &frameReader{limit: limit}
		fr.feed(bytes.Clone(data), func(op ws.OpCode, p []byte) bool {
			if int64(len(p)) > limit {
				t.Fatalf("handed over %d bytes, over the limit of %d", len(p), limit)
			}
			return true
		})
	})
}

// FuzzFrameRoundTrip: a message a client sends in any number of masked
// fragments comes out whole, with control frames between its fragments
// handed over in their place.
func FuzzFrameRoundTrip(f *testing.F) {
	f.Add([]byte("hello"), uint8(1), true)
	f.Add([]byte("a fragmented message"), uint8(4), false)
	f.Add([]byte{}, uint8(3), true)
	f.Fuzz(func(t *testing.T, msg []byte, pieces uint8, ping bool) {
		n := int(pieces%8) + 1
		var b []byte
		var want []string
		for i := range n {
			lo, hi := len(msg)*i/n, len(msg)*(i+1)/n
			op := ws.OpContinuation
			if i == 0 {
				op = ws.OpBinary
			}
			b = append(b, ws.MustCompileFrame(ws.MaskFrame(ws.NewFrame(op, i == n-1, append([]byte(nil), msg[lo:hi]...))))...)
			if ping && i < n-1 {
				b = append(b, ws.MustCompileFrame(ws.MaskFrame(ws.NewPingFrame([]byte{byte(i)})))...)
				want = append(want, fmt.Sprintf("%d:%q", ws.OpPing, []byte{byte(i)}))
			}
		}
		want = append(want, fmt.Sprintf("%d:%q", ws.OpBinary, msg))
		got, fail := feedAll(1<<20, b)
		if fail != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("got %v %v, want %v", got, fail, want)
		}
	})
}
