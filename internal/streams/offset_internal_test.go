package streams

import (
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

// TestOffsets: offsets round-trip, sort as text as Less orders them
// (segments first, then positions, past the digits where decimal would
// not), and are parsed strictly.
func TestOffsets(t *testing.T) {
	var prev Offset
	prevText := ""
	for _, seg := range []int{0, 1, 15, 16, 255} {
		for _, off := range []uint64{1, 9, 10, 15, 16, 255, 256, 1 << 40, 1<<64 - 1} {
			o := Offset{Seg: seg, Pos: pubsub.Position{Epoch: "ep0ch", Offset: off}}
			s := o.String()
			if s <= prevText || !prev.Less(o) && prevText != "" {
				t.Fatalf("%q does not sort after %q", s, prevText)
			}
			prev, prevText = o, s
			kind, got, err := parseOffset(s)
			if err != nil || kind != offsetAt || got != o {
				t.Fatalf("parse %q: %v %v %v", s, kind, got, err)
			}
		}
	}
	for _, bad := range []string{"", "0", "-2", "NOW", "000000000000000001", "000000000000000001_", "00000000000000000G_ep", "00000000000000000A_ep",
		"000000000000000001-ep", "000000000000000001_e/p", "000000000000000001_e,p", "0000000000000000001_ep", "../x", "1 2",
		"9999999999999999_9999999999999999", "0000000000000001_ep"} {
		if _, _, err := parseOffset(bad); err == nil {
			t.Errorf("parseOffset(%q) accepted", bad)
		}
	}
	for s, want := range map[string]offsetKind{"-1": offsetStart, "now": offsetNow, "0000000000000000_0000000000000000": offsetStart, "000000000000000000_ep": offsetStart} {
		if kind, _, err := parseOffset(s); err != nil || kind != want {
			t.Errorf("parseOffset(%q) = %v, %v", s, kind, err)
		}
	}
	if Start.String() != "-1" || !Start.Less(Offset{Pos: pubsub.Position{Offset: 1}}) {
		t.Error("Start")
	}
}

// FuzzParseOffset: whatever parses formats back to itself (or is a
// sentinel or the zero offset), and nothing panics.
func FuzzParseOffset(f *testing.F) {
	for _, s := range []string{"-1", "now", "000000000000000001_ep", "0100000000000000ff_0000000000000000", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, o, err := parseOffset(s)
		if err != nil || kind != offsetAt {
			return
		}
		if o.String() != s {
			t.Fatalf("%q parsed to %v, formats to %q", s, o, o.String())
		}
	})
}
