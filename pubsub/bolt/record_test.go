package bolt

import (
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, m := range []*pubsub.Message{
		{Topics: []string{"a"}},
		{Topics: []string{"a", "b/c", "é"}, Type: "t", Data: "x\ny\r\n", Retain: true, Final: true, Private: true},
		{Topics: []string{""}, Data: string(make([]byte, 100000))},
	} {
		m.Pos = pubsub.Position{Epoch: "ep", Offset: 1 << 40}
		m.Time = time.Unix(1700000000, 123456789)
		rec := appendRecord(nil, m)
		got, err := decodeMessage(rec, "ep")
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if got.Pos != m.Pos || !got.Time.Equal(m.Time) || got.Type != m.Type || got.Data != m.Data ||
			got.Retain != m.Retain || got.Final != m.Final || got.Private != m.Private || len(got.Topics) != len(m.Topics) {
			t.Fatalf("round trip: got %+v, want %+v", got, m)
		}
		r, _ := parseRecord(rec)
		if r.size("ep") != int64(m.Size()) {
			t.Errorf("size %d, want Message.Size %d", r.size("ep"), m.Size())
		}
		for i := range rec {
			if _, err := parseRecord(rec[:i]); err == nil {
				t.Fatalf("truncated record of %d/%d bytes parsed", i, len(rec))
			}
		}
	}
}

// FuzzParseRecord: no input makes the parser panic, and whatever it accepts
// encodes back to the same bytes.
func FuzzParseRecord(f *testing.F) {
	f.Add(appendRecord(nil, &pubsub.Message{Topics: []string{"a", "b"}, Type: "t", Data: "d", Final: true, Pos: pubsub.Position{Offset: 7}, Time: time.Unix(1, 2)}))
	f.Add([]byte{1, 0, 1, 2, 1, 1, 'a', 0, 0})
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRecord(b)
		if err != nil {
			return
		}
		m := r.message("e")
		if m.Retain != (b[1]&flagRetain != 0) {
			t.Fatal("flag lost")
		}
		if r.flags&^(flagRetain|flagFinal|flagPrivate) != 0 {
			return // unknown flags do not survive re-encoding
		}
		again := appendRecord(nil, m)
		if string(again) != string(b) {
			// Varints have one canonical form; a non-canonical input may
			// parse but encode differently. It must still parse the same.
			r2, err := parseRecord(again)
			if err != nil || r2.offset != r.offset || r2.time != r.time || string(r2.data) != string(r.data) {
				t.Fatalf("re-encoded record differs: %v", err)
			}
		}
	})
}
