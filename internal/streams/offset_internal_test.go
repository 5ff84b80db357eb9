package streams

import (
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

// TestOffsets: offsets round-trip, sort as positions do, and are parsed
// strictly.
func TestOffsets(t *testing.T) {
	prev := ""
	for _, off := range []uint64{1, 9, 10, 15, 16, 255, 256, 1 << 40, 1<<64 - 1} {
		p := pubsub.Position{Epoch: "ep0ch", Offset: off}
		s := FormatOffset(p)
		if s <= prev {
			t.Fatalf("%q does not sort after %q", s, prev)
		}
		prev = s
		kind, got, err := parseOffset(s)
		if err != nil || kind != offsetAt || got != p {
			t.Fatalf("parse %q: %v %v %v", s, kind, got, err)
		}
	}
	for _, bad := range []string{"", "0", "-2", "NOW", "0000000000000001", "0000000000000001_", "000000000000000G_ep", "000000000000000A_ep",
		"0000000000000001-ep", "0000000000000001_e/p", "0000000000000001_e,p", "00000000000000001_ep", "../x", "1 2"} {
		if _, _, err := parseOffset(bad); err == nil {
			t.Errorf("parseOffset(%q) accepted", bad)
		}
	}
	for s, want := range map[string]offsetKind{"-1": offsetStart, "now": offsetNow, "0000000000000000_0000000000000000": offsetStart} {
		if kind, _, err := parseOffset(s); err != nil || kind != want {
			t.Errorf("parseOffset(%q) = %v, %v", s, kind, err)
		}
	}
}

// FuzzParseOffset: whatever parses formats back to itself (or is a
// sentinel or the zero offset), and nothing panics.
func FuzzParseOffset(f *testing.F) {
	for _, s := range []string{"-1", "now", "0000000000000001_ep", "00000000000000ff_0000000000000000", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, p, err := parseOffset(s)
		if err != nil || kind != offsetAt {
			return
		}
		if FormatOffset(p) != s {
			t.Fatalf("%q parsed to %v, formats to %q", s, p, FormatOffset(p))
		}
	})
}
