package sse

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEventAppendTo(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   Event
		want string
	}{
		{"data only", Event{Data: "hi"}, "data: hi\n\n"},
		{"empty data still dispatches", Event{}, "data: \n\n"},
		{"id type data", Event{ID: "e-1", Type: "add", Data: "x"}, "id: e-1\nevent: add\ndata: x\n\n"},
		{"empty id with HasID resets the id", Event{HasID: true, Data: "x"}, "id: \ndata: x\n\n"},
		{"retry", Event{Retry: 1500 * time.Millisecond, Data: "x"}, "retry: 1500\ndata: x\n\n"},
		{"negative retry omitted", Event{Retry: -time.Second, Data: "x"}, "data: x\n\n"},
		{"LF splits data lines", Event{Data: "a\nb"}, "data: a\ndata: b\n\n"},
		{"CRLF splits data lines", Event{Data: "a\r\nb"}, "data: a\ndata: b\n\n"},
		{"CR splits data lines", Event{Data: "a\rb"}, "data: a\ndata: b\n\n"},
		{"CR CR is two line ends", Event{Data: "a\r\rb"}, "data: a\ndata: \ndata: b\n\n"},
		{"trailing LF is an empty line", Event{Data: "a\n"}, "data: a\ndata: \n\n"},
		{"leading space kept", Event{Data: " a"}, "data:  a\n\n"},
		{"field injection stays data", Event{Data: "x\n\nevent: evil\nid: 666\ndata: y"},
			"data: x\ndata: \ndata: event: evil\ndata: id: 666\ndata: data: y\n\n"},
		{"colon and NUL in data", Event{Data: "a:b\x00"}, "data: a:b\x00\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.ev.AppendTo([]byte("prefix|"))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix|"+tc.want {
				t.Errorf("AppendTo = %q, want %q", got, "prefix|"+tc.want)
			}
			var buf bytes.Buffer
			n, err := tc.ev.WriteTo(&buf)
			if err != nil || n != int64(len(tc.want)) || buf.String() != tc.want {
				t.Errorf("WriteTo = %d, %v, %q", n, err, buf.String())
			}
			// The wire form decodes to exactly one event.
			evs := decodeAll(strings.NewReader(tc.want), 0).Events
			if len(evs) != 1 {
				t.Fatalf("decodes to %d events: %+v", len(evs), evs)
			}
			wantData := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(tc.ev.Data)
			if evs[0].Data != wantData || evs[0].ID != tc.ev.ID {
				t.Errorf("decodes to %+v", evs[0])
			}
		})
	}
}

func TestEventValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   Event
	}{
		{"LF in id", Event{ID: "a\nb"}},
		{"CR in id", Event{ID: "a\rb"}},
		{"NUL in id", Event{ID: "a\x00b"}},
		{"LF in type", Event{Type: "a\nb"}},
		{"CR in type", Event{Type: "a\r"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.ev.Validate(); !errors.Is(err, ErrInvalidField) {
				t.Errorf("Validate = %v, want ErrInvalidField", err)
			}
			dst := []byte("keep")
			got, err := tc.ev.AppendTo(dst)
			if !errors.Is(err, ErrInvalidField) || string(got) != "keep" {
				t.Errorf("AppendTo = %q, %v; want dst unchanged and ErrInvalidField", got, err)
			}
			var buf bytes.Buffer
			if n, err := tc.ev.WriteTo(&buf); !errors.Is(err, ErrInvalidField) || n != 0 || buf.Len() != 0 {
				t.Errorf("WriteTo = %d, %v, wrote %q", n, err, buf.String())
			}
		})
	}
	// NUL is fine in a type and in data.
	ok := Event{Type: "a\x00", Data: "\x00"}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", ok, err)
	}
}

func TestValidIDAndType(t *testing.T) {
	for _, s := range []string{"", "abc-12", "with space", "ünï©ødé", ":colon"} {
		if err := ValidID(s); err != nil {
			t.Errorf("ValidID(%q) = %v", s, err)
		}
		if err := ValidType(s); err != nil {
			t.Errorf("ValidType(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"\n", "a\r\n", "x\x00"} {
		if err := ValidID(s); err == nil {
			t.Errorf("ValidID(%q) = nil", s)
		}
	}
}

func TestAppendHelpers(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"comment", AppendComment(nil, "hello"), ": hello\n"},
		{"empty comment", AppendComment(nil, ""), ":\n"},
		{"multi-line comment", AppendComment(nil, "a\nb\r\nc\rd"), ": a\n: b\n: c\n: d\n"},
		{"comment cannot inject", AppendComment(nil, "x\ndata: evil"), ": x\n: data: evil\n"},
		{"retry", AppendRetry(nil, 5*time.Second), "retry: 5000\n\n"},
		{"data", AppendData(nil, "a\nb"), "data: a\ndata: b\n"},
		{"empty data", AppendData(nil, ""), "data: \n"},
		{"appends", AppendComment([]byte("x"), "y"), "x: y\n"},
	} {
		if string(tc.got) != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}

	id, err := AppendID(nil, "e-42")
	if err != nil || string(id) != "id: e-42\n\n" {
		t.Errorf("AppendID = %q, %v", id, err)
	}
	if got, err := AppendID([]byte("k"), "a\nb"); !errors.Is(err, ErrInvalidField) || string(got) != "k" {
		t.Errorf("AppendID with LF = %q, %v", got, err)
	}
	// An id-only block sets the last event id and dispatches nothing.
	d := decodeAll(strings.NewReader(string(id)+string(AppendComment(nil, "x\ny"))+string(AppendRetry(nil, time.Second))), 0)
	if len(d.Events) != 0 || d.LastID != "e-42" || d.Retry != time.Second {
		t.Errorf("id-only block, comment, retry decode to %+v", d)
	}
}

func TestAppendToDoesNotAllocateMoreThanOnce(t *testing.T) {
	ev := Event{ID: "abcdefghij-123456", Type: "update", Data: strings.Repeat("x", 200) + "\n" + strings.Repeat("y", 200)}
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		if _, err = ev.AppendTo(buf[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendTo into a large enough buffer allocates %v times, want 0", allocs)
	}
}

// TestAppendDataTight: "data:" without the separator space, except before
// a line that starts with a space, and the decoder reads back the same
// text (line ends normalised to LF).
func TestAppendDataTight(t *testing.T) {
	for _, c := range []struct{ in, wire, back string }{
		{"a", "data:a\n", "a"},
		{"line1\nline2", "data:line1\ndata:line2\n", "line1\nline2"},
		{" lead", "data:  lead\n", " lead"},
		{"a\r\nb\rc", "data:a\ndata:b\ndata:c\n", "a\nb\nc"},
		{"", "data:\n", ""},
		{"x\n", "data:x\ndata:\n", "x\n"},
	} {
		got := string(AppendDataTight(nil, c.in))
		if got != c.wire {
			t.Errorf("AppendDataTight(%q) = %q, want %q", c.in, got, c.wire)
			continue
		}
		ev, err := NewDecoder(strings.NewReader(got + "\n")).Next()
		if err != nil || ev.Data != c.back {
			t.Errorf("decoding %q: %q, %v; want %q", got, ev.Data, err, c.back)
		}
	}
}
