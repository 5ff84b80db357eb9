package sseclient

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/heraldpush/herald/sse"
)

// FuzzClientStream feeds a stream to the client in chunks (split at two
// fuzzed points, or one byte per read) and checks that it yields exactly
// what the reference decoder reads from the whole stream in one piece (the
// comments too, to OnComment), that it resumes with the reference's last
// event id, and that it stops for good on an oversized event.
func FuzzClientStream(f *testing.F) {
	for _, s := range []string{
		"data: a\n\n",
		"id: 1\r\ndata: a\r\n\r\n",
		"id: 1\r\n\r\nid: 2\r\n\r\n",
		"\xEF\xBB\xBFdata: bom\n\n",
		"\xEF\xBB\xBF\xEF\xBB\xBFdata: two boms\n\n",
		"retry: 10\n\nretry: 0\n\ndata: x\n\n",
		": comment\n\n:\n",
		"event: e\ndata\ndata:\ndata:  two spaces\n\n",
		"id: a\x00b\ndata: nul\n\n",
		"id\ndata: reset\n\n",
		"data: \xff\xfe\xed\xa0\x80\n\n",
		"data: cut off",
		"data: a\r\rdata: b\r\n\n",
		"data: 0123456789012345678901234567890123456789012345678901234567890123456789\n\n",
	} {
		f.Add([]byte(s), uint16(3), uint16(7), false)
	}
	f.Add([]byte("id: 1\r\ndata: a\r\n\r\n"), uint16(6), uint16(7), true)
	f.Fuzz(func(t *testing.T, stream []byte, a, b uint16, oneByte bool) {
		const maxSize = 64
		// The reference: the spec-exact decoder over the whole stream.
		ref := sse.NewDecoder(bytes.NewReader(stream))
		ref.MaxEventSize = maxSize
		ref.SetLastEventID("start")
		var wantComments []string
		ref.OnComment = func(c string) { wantComments = append(wantComments, c) }
		var want []sse.Event
		var refErr error
		for {
			ev, err := ref.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					refErr = err
				}
				break
			}
			want = append(want, ev)
		}

		var chunks []string
		if oneByte {
			for i := range stream {
				chunks = append(chunks, string(stream[i:i+1]))
			}
		} else {
			i, j := int(a)%(len(stream)+1), int(b)%(len(stream)+1)
			i, j = min(i, j), max(i, j)
			chunks = []string{string(stream[:i]), string(stream[i:j]), string(stream[j:])}
		}

		synctest.Test(t, func(t *testing.T) {
			s := &script{steps: []step{sseOK(chunks...)}}
			var gotComments []string
			c := New("http://herald.test/", &Options{HTTPClient: &http.Client{Transport: s}, MaxEventSize: maxSize, LastEventID: "start",
				OnComment: func(c string) { gotComments = append(gotComments, c) }})
			var got []sse.Event
			var err error
			for ev, e := range c.Events(t.Context()) {
				if e != nil {
					err = e
					break
				}
				got = append(got, ev)
			}
			if len(got) != len(want) {
				t.Fatalf("%d events, want %d\n got %+v\nwant %+v", len(got), len(want), got, want)
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("event %d = %+v, want %+v", i, got[i], want[i])
				}
			}
			if !slices.Equal(gotComments, wantComments) {
				t.Fatalf("comments %q, want %q", gotComments, wantComments)
			}
			if refErr != nil {
				if !errors.Is(err, sse.ErrTooLarge) || len(s.reqs) != 1 {
					t.Fatalf("err = %v after %d requests, want sse.ErrTooLarge after 1", err, len(s.reqs))
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want nil (ended by 204)", err)
			}
			if len(s.reqs) != 2 {
				t.Fatalf("%d requests, want 2", len(s.reqs))
			}
			if got, want := s.reqs[1].Header.Get("Last-Event-ID"), ref.LastEventID(); got != want {
				t.Fatalf("resumed with Last-Event-ID %q, want %q", got, want)
			}
			if c.LastEventID() != ref.LastEventID() {
				t.Fatalf("LastEventID() = %q, want %q", c.LastEventID(), ref.LastEventID())
			}
		})
	})
}
