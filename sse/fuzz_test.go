package sse

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"
)

// FuzzDecodeChunked checks that a stream decodes the same however it is
// split into reads: in two chunks at every position (and at the fuzzed one),
// and one byte at a time. Stream parsers break at chunk boundaries: a CRLF
// or a BOM split across reads, a line end at the very end of a buffer.
func FuzzDecodeChunked(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add([]byte(tc.in), uint16(len(tc.in)/2), uint8(tc.max))
	}
	f.Add([]byte("\uFEFFid: 1\r\nevent: e\r\ndata: a\r\ndata: b\r\n\r\nretry: 10\r\r"), uint16(3), uint8(0))
	f.Add([]byte("data: x\r"), uint16(8), uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, at uint16, max uint8) {
		limit := int(max) // 0: the default; small limits exercise ErrTooLarge
		whole := decodeAll(bytes.NewReader(in), limit)
		for _, ev := range whole.Events {
			if !utf8.ValidString(ev.Data) || !utf8.ValidString(ev.Type) || !utf8.ValidString(ev.ID) {
				t.Fatalf("decoded invalid UTF-8: %+v", ev)
			}
			if ev.Type == "" {
				t.Fatalf("event without a type: %+v", ev)
			}
			if strings.ContainsAny(ev.ID, "\x00\r\n") || strings.ContainsAny(ev.Type, "\r\n") || strings.Contains(ev.Data, "\r") {
				t.Fatalf("decoded a field with a line end or NUL: %+v", ev)
			}
		}
		check := func(name string, got decoded) {
			t.Helper()
			if !sameDecoded(got, whole) {
				t.Fatalf("%s:\n got %+v\nwant %+v", name, got, whole)
			}
		}
		i := int(at) % (len(in) + 1)
		check("fuzzed split", decodeAll(chunks(string(in[:i]), string(in[i:])), limit))
		check("bytewise", decodeAll(iotest.OneByteReader(bytes.NewReader(in)), limit))
		if len(in) <= 256 {
			for i := range len(in) + 1 {
				check("split", decodeAll(chunks(string(in[:i]), string(in[i:])), limit))
			}
		}
	})
}

// FuzzRoundTrip checks that every event the encoder accepts decodes back to
// itself (line ends in data normalised to LF, invalid UTF-8 to U+FFFD), that
// no value injects a field or another event, and that the encoder refuses
// exactly the ids and types that could.
func FuzzRoundTrip(f *testing.F) {
	f.Add("e-1", "update", "hello", int64(0), false, "")
	f.Add("", "", "", int64(5000), true, "comment")
	f.Add("x", "t", "a\r\nb\rc\nd\n", int64(1), false, "a\nb")
	f.Add("id with space ", " type", " data", int64(0), false, "")
	f.Add("x\ny", "t", "d", int64(0), false, "")
	f.Add("x", "t\r", "d", int64(0), false, "")
	f.Add("x\x00", "t", "d", int64(0), false, "")
	f.Add("\xff", "\xfe", "\xe2\x82\n\xed\xa0\x80", int64(0), false, "\r")
	f.Add("a", "b", "x\n\nevent: evil\nid: 666\ndata: y", int64(0), false, "x\ndata: evil\n\n")
	f.Fuzz(func(t *testing.T, id, typ, data string, retryMS int64, hasID bool, comment string) {
		ev := Event{ID: id, Type: typ, Data: data, HasID: hasID}
		if retryMS > 0 && retryMS < 1<<40 {
			ev.Retry = time.Duration(retryMS) * time.Millisecond
		}
		invalid := strings.ContainsAny(id, "\r\n\x00") || strings.ContainsAny(typ, "\r\n")
		wire, err := ev.AppendTo(nil)
		if invalid {
			if err == nil {
				t.Fatalf("AppendTo(%+v) accepted an unencodable event: %q", ev, wire)
			}
			return
		}
		if err != nil {
			t.Fatalf("AppendTo(%+v) = %v", ev, err)
		}
		// A comment before, and a second event without an id after: it
		// must carry the first event's id.
		stream := AppendComment(nil, comment)
		stream = append(stream, wire...)
		stream = append(stream, "data: next\n\n"...)
		d := decodeAll(bytes.NewReader(stream), 0)
		if d.Err != nil || len(d.Events) != 2 {
			t.Fatalf("%q decodes to %+v", stream, d)
		}
		wantID := toValidUTF8([]byte(id))
		wantType := toValidUTF8([]byte(typ))
		if wantType == "" {
			wantType = "message"
		}
		wantData := toValidUTF8([]byte(strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(data)))
		want := Event{ID: wantID, HasID: id != "" || hasID, Type: wantType, Data: wantData}
		if d.Events[0] != want {
			t.Fatalf("round trip of %+v\n got %+v\nwant %+v\nwire %q", ev, d.Events[0], want, wire)
		}
		if next := (Event{ID: wantID, Type: "message", Data: "next"}); d.Events[1] != next {
			t.Fatalf("event after %q: got %+v, want %+v", wire, d.Events[1], next)
		}
		if d.Retry != ev.Retry {
			t.Fatalf("retry: got %v, want %v", d.Retry, ev.Retry)
		}
		// The comment comes back, one comment per line of its text.
		wantComments := strings.Split(strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(comment), "\n")
		for i, c := range wantComments {
			wantComments[i] = toValidUTF8([]byte(c))
		}
		if !slices.Equal(d.Comments, wantComments) {
			t.Fatalf("comment %q decodes to %q, want %q", comment, d.Comments, wantComments)
		}
		// The encoded event is a block of field lines ended by one blank
		// line: no value can end it early.
		if !bytes.HasSuffix(wire, []byte("\n\n")) || bytes.Contains(wire[:len(wire)-1], []byte("\n\n")) || bytes.ContainsRune(wire, '\r') {
			t.Fatalf("wire form %q is not one block", wire)
		}
	})
}
