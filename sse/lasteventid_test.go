package sse

import (
	"strings"
	"testing"
)

func TestDecoderSetLastEventID(t *testing.T) {
	tests := []struct {
		name     string
		stream   string
		wantIDs  []string // ids of the dispatched events
		wantLast string   // LastEventID at the end
	}{
		{"kept when the stream sends no id", "data: a\n\n", []string{"x-1"}, "x-1"},
		{"replaced by an id field", "id: x-2\ndata: a\n\ndata: b\n\n", []string{"x-2", "x-2"}, "x-2"},
		{"reset by an empty id", "id\ndata: a\n\n", []string{""}, ""},
		{"replaced by an id-only block", "id: x-3\n\n", nil, "x-3"},
		{"not taken from an undispatched block", "id: x-4\n", nil, "x-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder(strings.NewReader(tt.stream))
			d.SetLastEventID("x-1")
			var ids []string
			for {
				ev, err := d.Next()
				if err != nil {
					break
				}
				ids = append(ids, ev.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tt.wantIDs, ",") {
				t.Errorf("event ids = %q, want %q", ids, tt.wantIDs)
			}
			if got := d.LastEventID(); got != tt.wantLast {
				t.Errorf("LastEventID() = %q, want %q", got, tt.wantLast)
			}
		})
	}
}

func TestDecoderHasRetry(t *testing.T) {
	for _, tt := range []struct {
		stream string
		want   bool
	}{
		{"data: a\n\n", false},
		{"retry: x\ndata: a\n\n", false},
		{"retry: 0\ndata: a\n\n", true},
		{"retry: 10\n\nretry: 0\n\ndata: a\n\n", true},
	} {
		d := NewDecoder(strings.NewReader(tt.stream))
		if _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
		if d.HasRetry() != tt.want || d.Retry() != 0 {
			t.Errorf("%q: HasRetry() = %v, Retry() = %v; want %v, 0", tt.stream, d.HasRetry(), d.Retry(), tt.want)
		}
	}
}
