package sse

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// decoded is everything a decoder tells about a stream.
type decoded struct {
	Events   []Event
	Comments []string // what OnComment got
	LastID   string
	Retry    time.Duration
	Err      error // nil at a clean end (io.EOF)
}

func decodeAll(r io.Reader, max int) decoded {
	d := NewDecoder(r)
	d.MaxEventSize = max
	var out decoded
	d.OnComment = func(text string) { out.Comments = append(out.Comments, text) }
	for {
		ev, err := d.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				out.Err = err
			}
			break
		}
		out.Events = append(out.Events, ev)
	}
	out.LastID, out.Retry = d.LastEventID(), d.Retry()
	return out
}

// chunkReader returns its chunks one per Read call.
type chunkReader struct{ chunks [][]byte }

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

func chunks(parts ...string) io.Reader {
	cr := &chunkReader{}
	for _, p := range parts {
		cr.chunks = append(cr.chunks, []byte(p))
	}
	return cr
}

func msg(data string) Event { return Event{Type: "message", Data: data} }

func sameDecoded(a, b decoded) bool {
	if len(a.Events) != len(b.Events) || a.LastID != b.LastID || a.Retry != b.Retry || !slices.Equal(a.Comments, b.Comments) {
		return false
	}
	for i := range a.Events {
		if a.Events[i] != b.Events[i] {
			return false
		}
	}
	return errors.Is(a.Err, ErrTooLarge) == errors.Is(b.Err, ErrTooLarge) && (a.Err == nil) == (b.Err == nil)
}

var decodeCases = []struct {
	name     string
	in       string
	max      int
	want     []Event
	comments []string // what OnComment gets
	lastID   string
	retry    time.Duration
	err      error
}{
	// Line ends.
	{name: "LF", in: "data: a\n\n", want: []Event{msg("a")}},
	{name: "CR", in: "data: a\r\r", want: []Event{msg("a")}},
	{name: "CRLF", in: "data: a\r\n\r\n", want: []Event{msg("a")}},
	{name: "mixed line ends", in: "data: a\rdata: b\ndata: c\r\n\n", want: []Event{msg("a\nb\nc")}},
	{name: "CR then LF is one line end", in: "data: a\r\n\r\ndata: b\r\n\r\n", want: []Event{msg("a"), msg("b")}},
	{name: "LF then CR is two line ends", in: "data: a\n\rdata: b\n\n", want: []Event{msg("a"), msg("b")}},
	{name: "CR CR is a blank line", in: "data: a\r\rdata: b\r\r", want: []Event{msg("a"), msg("b")}},

	// Byte order mark.
	{name: "leading BOM skipped", in: "\uFEFFdata: a\n\n", want: []Event{msg("a")}},
	{name: "second BOM is part of the field name", in: "\uFEFF\uFEFFdata: a\n\ndata: b\n\n", want: []Event{msg("b")}},
	{name: "BOM after the first line is kept", in: "data: a\n\uFEFFdata: b\n\n", want: []Event{msg("a")}},
	{name: "BOM inside data is kept", in: "data: \uFEFFx\n\n", want: []Event{msg("\uFEFFx")}},
	{name: "partial BOM is invalid UTF-8", in: "\xEF\xBBdata: a\n\ndata: b\n\n", want: []Event{msg("b")}},
	{name: "BOM only", in: "\uFEFF", want: nil},
	{name: "BOM then a blank line", in: "\uFEFF\ndata: a\n\n", want: []Event{msg("a")}},
	{name: "BOM then CRLF", in: "\uFEFF\r\ndata: a\r\n\r\n", want: []Event{msg("a")}},
	{name: "BOM then a comment", in: "\uFEFF: c\ndata: a\n\n", want: []Event{msg("a")}, comments: []string{"c"}},

	// Data.
	{name: "data lines joined with LF", in: "data: a\ndata: b\ndata: c\n\n", want: []Event{msg("a\nb\nc")}},
	{name: "one trailing LF removed", in: "data: a\ndata:\n\n", want: []Event{msg("a\n")}},
	{name: "empty data dispatches", in: "data\n\n", want: []Event{msg("")}},
	{name: "empty data with colon dispatches", in: "data:\n\n", want: []Event{msg("")}},
	{name: "two empty data lines", in: "data:\ndata:\n\n", want: []Event{msg("\n")}},
	{name: "no space after colon", in: "data:a\n\n", want: []Event{msg("a")}},
	{name: "only one space stripped", in: "data:  a \n\n", want: []Event{msg(" a ")}},
	{name: "tab is not stripped", in: "data:\ta\n\n", want: []Event{msg("\ta")}},
	{name: "colon in value", in: "data: a: b:c\n\n", want: []Event{msg("a: b:c")}},
	{name: "NUL in data kept", in: "data: a\x00b\n\n", want: []Event{msg("a\x00b")}},
	{name: "blank lines without data dispatch nothing", in: "\n\n\r\n\r\r", want: nil},

	// Event type.
	{name: "event type", in: "event: add\ndata: x\n\n", want: []Event{{Type: "add", Data: "x"}}},
	{name: "event type resets after dispatch", in: "event: add\ndata: x\n\ndata: y\n\n", want: []Event{{Type: "add", Data: "x"}, msg("y")}},
	{name: "event type resets on a block without data", in: "event: add\n\ndata: y\n\n", want: []Event{msg("y")}},
	{name: "empty event type is message", in: "event\ndata: x\n\n", want: []Event{msg("x")}},
	{name: "last event type wins", in: "event: a\nevent: b\ndata: x\n\n", want: []Event{{Type: "b", Data: "x"}}},

	// Id.
	{name: "id", in: "id: 1\ndata: a\n\n", want: []Event{{ID: "1", HasID: true, Type: "message", Data: "a"}}, lastID: "1"},
	{name: "id persists to later events", in: "id: 1\ndata: a\n\ndata: b\n\n",
		want: []Event{{ID: "1", HasID: true, Type: "message", Data: "a"}, {ID: "1", Type: "message", Data: "b"}}, lastID: "1"},
	{name: "id with NUL ignored", in: "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n",
		want: []Event{{ID: "1", HasID: true, Type: "message", Data: "a"}, {ID: "1", Type: "message", Data: "b"}}, lastID: "1"},
	{name: "empty id resets", in: "id: 1\ndata: a\n\nid\ndata: b\n\n",
		want: []Event{{ID: "1", HasID: true, Type: "message", Data: "a"}, {ID: "", HasID: true, Type: "message", Data: "b"}}},
	{name: "id-only block updates last id without dispatch", in: "id: 7\n\n", want: nil, lastID: "7"},
	{name: "id-only block then event", in: "id: 7\n\ndata: a\n\n", want: []Event{{ID: "7", Type: "message", Data: "a"}}, lastID: "7"},
	{name: "id of a pending event at EOF is not taken", in: "id: 1\ndata: a\n\nid: 2\ndata: b\n", want: []Event{{ID: "1", HasID: true, Type: "message", Data: "a"}}, lastID: "1"},
	{name: "id keeps spaces after the first", in: "id:  x y \n\n", lastID: " x y "},
	{name: "id with spaces on an event", in: "id:  x y \ndata: a\n\n", want: []Event{{ID: " x y ", HasID: true, Type: "message", Data: "a"}}, lastID: " x y "},

	// Retry.
	{name: "retry", in: "retry: 1500\n\n", retry: 1500 * time.Millisecond},
	{name: "retry without space", in: "retry:250\n\n", retry: 250 * time.Millisecond},
	{name: "retry zero", in: "retry: 0\n\n", retry: 0},
	{name: "retry with letters ignored", in: "retry: 1500\n\nretry: 15x\n\n", retry: 1500 * time.Millisecond},
	{name: "retry negative ignored", in: "retry: -1\n\n", retry: 0},
	{name: "retry with two spaces ignored", in: "retry:  100\n\n", retry: 0},
	{name: "retry empty ignored", in: "retry: 300\nretry\n\n", retry: 300 * time.Millisecond},
	{name: "retry decimal ignored", in: "retry: 1.5\n\n", retry: 0},
	{name: "retry huge clamped", in: "retry: 99999999999999999999999\n\n", retry: time.Duration(1<<63-1) / time.Millisecond * time.Millisecond},
	{name: "retry without blank line still applies", in: "retry: 42\n", retry: 42 * time.Millisecond},
	{name: "retry does not dispatch", in: "retry: 10\ndata: a\n\n", want: []Event{msg("a")}, retry: 10 * time.Millisecond},

	// Comments, unknown fields, fields without colon.
	{name: "comment", in: ": hello\n\n", want: nil, comments: []string{"hello"}},
	{name: "bare colon comment", in: ":\n\n", want: nil, comments: []string{""}},
	{name: "comment between data lines", in: "data: a\n: note\ndata: b\n\n", want: []Event{msg("a\nb")}, comments: []string{"note"}},
	{name: "comment with field syntax", in: ":data: x\n\n", want: nil, comments: []string{"data: x"}},
	{name: "comment keeps spaces after the first", in: ":  two \r\n:\t\xff\n\n", want: nil, comments: []string{" two ", "\t\uFFFD"}},
	{name: "unknown field ignored", in: "foo: bar\ndata: x\n\n", want: []Event{msg("x")}},
	{name: "field names are case sensitive", in: "Data: x\n\n", want: nil},
	{name: "leading space makes an unknown field", in: " data: x\n\n", want: nil},
	{name: "field without colon", in: "data\ndata\n\n", want: []Event{msg("\n")}},

	// End of stream.
	{name: "pending event at EOF discarded", in: "data: a\n", want: nil},
	{name: "partial line at EOF discarded", in: "data: a", want: nil},
	{name: "complete event then pending", in: "data: a\n\ndata: b\n", want: []Event{msg("a")}},
	{name: "CR at EOF ends the line only", in: "data: a\r", want: nil},
	{name: "empty stream", in: "", want: nil},

	// Invalid UTF-8: each maximal subpart becomes one U+FFFD.
	{name: "lone continuation byte", in: "data: \x80\n\n", want: []Event{msg("\uFFFD")}},
	{name: "invalid byte FF", in: "data: a\xffb\n\n", want: []Event{msg("a\uFFFDb")}},
	{name: "truncated 3-byte sequence is one subpart", in: "data: \xe2\x82x\n\n", want: []Event{msg("\uFFFDx")}},
	{name: "truncated 4-byte sequence is one subpart", in: "data: \xf0\x9f\x98\n\n", want: []Event{msg("\uFFFD")}},
	{name: "surrogate is three subparts", in: "data: \xed\xa0\x80\n\n", want: []Event{msg("\uFFFD\uFFFD\uFFFD")}},
	{name: "overlong NUL is two subparts", in: "data: \xc0\x80\n\n", want: []Event{msg("\uFFFD\uFFFD")}},
	{name: "E0 80 80 is three subparts", in: "data: \xe0\x80\x80\n\n", want: []Event{msg("\uFFFD\uFFFD\uFFFD")}},
	{name: "above U+10FFFF is four subparts", in: "data: \xf4\x90\x80\x80\n\n", want: []Event{msg("\uFFFD\uFFFD\uFFFD\uFFFD")}},
	{name: "truncated sequence before line end", in: "data: \xe2\x82\ndata: \xe2\x82\xac\n\n", want: []Event{msg("\uFFFD\n€")}},
	{name: "invalid UTF-8 in event type", in: "event: a\xffb\ndata: x\n\n", want: []Event{{Type: "a\uFFFDb", Data: "x"}}},
	{name: "invalid UTF-8 in id", in: "id: \xff\n\n", lastID: "\uFFFD"},

	// Size limit.
	{name: "data under the limit", max: 16, in: "data: 123456789\n\n", want: []Event{msg("123456789")}},
	{name: "data lines at the limit together", max: 8, in: "data:123\ndata:456\n\n", want: []Event{msg("123\n456")}},
	{name: "data lines over the limit together", max: 8, in: "data:123\ndata:456\ndata:7\n\n", err: ErrTooLarge},
	{name: "data line over the limit", max: 8, in: "data: 12345678\n\n", err: ErrTooLarge},
	{name: "line over the limit", max: 8, in: ": 0123456789\n\n", err: ErrTooLarge},
	{name: "line over the limit without line end", max: 8, in: ": 0123456789", err: ErrTooLarge},
	{name: "line at the limit", max: 8, in: ": 234567\n\ndata: a\n\n", want: []Event{msg("a")}, comments: []string{"234567"}},
	{name: "limit resets between events", max: 8, in: "data:123\ndata:456\n\ndata:123\ndata:456\n\n", want: []Event{msg("123\n456"), msg("123\n456")}},
	{name: "events before the error are returned", max: 8, in: "data: a\n\ndata: 0123456789\n\n", want: []Event{msg("a")}, err: ErrTooLarge},
}

func TestDecoder(t *testing.T) {
	readers := []struct {
		name string
		make func(string) io.Reader
	}{
		{"whole", func(s string) io.Reader { return strings.NewReader(s) }},
		{"bytewise", func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
		{"halves", func(s string) io.Reader { return chunks(s[:len(s)/2], s[len(s)/2:]) }},
		{"data-err", func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) }},
	}
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, rd := range readers {
				got := decodeAll(rd.make(tc.in), tc.max)
				want := decoded{Events: tc.want, Comments: tc.comments, LastID: tc.lastID, Retry: tc.retry, Err: tc.err}
				if !sameDecoded(got, want) {
					t.Errorf("%s reader:\n got %+v\nwant %+v", rd.name, got, want)
				}
				if tc.err != nil && !errors.Is(got.Err, tc.err) {
					t.Errorf("%s reader: err = %v, want %v", rd.name, got.Err, tc.err)
				}
			}
			// Every split into two reads gives the same result.
			whole := decodeAll(strings.NewReader(tc.in), tc.max)
			for i := 0; i <= len(tc.in); i++ {
				got := decodeAll(chunks(tc.in[:i], tc.in[i:]), tc.max)
				if !sameDecoded(got, whole) {
					t.Fatalf("split at %d:\n got %+v\nwant %+v", i, got, whole)
				}
			}
		})
	}
}

func TestDecoderCRLFSplitAcrossReads(t *testing.T) {
	for _, tc := range []struct {
		parts []string
		want  []Event
	}{
		{[]string{"data: a\r", "\ndata: b\r", "\n\r", "\n"}, []Event{msg("a\nb")}},
		{[]string{"data: a\r", "\n", "\r", "\n"}, []Event{msg("a")}},
		{[]string{"data: a", "\r", "\n", "\r", "\n"}, []Event{msg("a")}},
		// A CR at the end of one read and a CR at the start of the next
		// are two line ends: a blank line.
		{[]string{"data: a\r", "\rdata: b\r\r"}, []Event{msg("a"), msg("b")}},
		// A lone LF after CR-LF is a blank line of its own.
		{[]string{"data: a\r", "\n", "\n"}, []Event{msg("a")}},
	} {
		got := decodeAll(chunks(tc.parts...), 0)
		if !sameDecoded(got, decoded{Events: tc.want}) {
			t.Errorf("%q: got %+v, want %+v", tc.parts, got.Events, tc.want)
		}
	}
}

// stepReader returns one chunk per Read, as they are sent to it.
type stepReader struct {
	steps chan string
}

func (s *stepReader) Read(p []byte) (int, error) {
	chunk, ok := <-s.steps
	if !ok {
		return 0, io.EOF
	}
	return copy(p, chunk), nil
}

// An event is returned as soon as its blank line arrives, without waiting
// for more input: a decoder must not read ahead across a dispatch.
func TestDecoderDispatchesWithoutReadingAhead(t *testing.T) {
	r := &stepReader{steps: make(chan string, 1)}
	d := NewDecoder(r)
	for _, s := range []string{"data: a\n\n", "data: b\r\r", "data: c\r\n\r\n"} {
		r.steps <- s
		ev, err := d.Next()
		if err != nil || ev.Data != s[6:7] {
			t.Fatalf("Next after %q = %+v, %v", s, ev, err)
		}
	}
	close(r.steps)
	if _, err := d.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("Next at end = %v, want io.EOF", err)
	}
}

func TestDecoderErrorsAreSticky(t *testing.T) {
	boom := errors.New("boom")
	d := NewDecoder(io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(boom)))
	if ev, err := d.Next(); err != nil || ev.Data != "a" {
		t.Fatalf("first Next = %+v, %v", ev, err)
	}
	for range 2 {
		if _, err := d.Next(); !errors.Is(err, boom) {
			t.Fatalf("Next = %v, want %v", err, boom)
		}
	}
}

func TestDecoderNoProgress(t *testing.T) {
	d := NewDecoder(zeroReader{})
	if _, err := d.Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("Next = %v, want io.ErrNoProgress", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestRead(t *testing.T) {
	in := "data: a\n\nevent: x\ndata: b\n\n: c\n\ndata: d\n\ndata: pending"
	var got []Event
	for ev, err := range Read(strings.NewReader(in)) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	want := []Event{msg("a"), {Type: "x", Data: "b"}, msg("d")}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}

	t.Run("stops when the loop breaks", func(t *testing.T) {
		n := 0
		for range Read(strings.NewReader(in)) {
			n++
			break
		}
		if n != 1 {
			t.Fatalf("n = %d", n)
		}
	})
	t.Run("yields an error once, last", func(t *testing.T) {
		boom := errors.New("boom")
		var errs []error
		n := 0
		for ev, err := range Read(io.MultiReader(strings.NewReader("data: a\n\n"), iotest.ErrReader(boom))) {
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ev.Data != "a" {
				t.Errorf("event %+v", ev)
			}
			n++
		}
		if n != 1 || len(errs) != 1 || !errors.Is(errs[0], boom) {
			t.Fatalf("events %d, errors %v", n, errs)
		}
	})
}
