package testkit

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestBlockReader(t *testing.T) {
	stream := ": ok\n\nretry: 1500\n\nid: e-0\n\n\nid: e-1\nevent: up\ndata: a\ndata: b\n\n: keep-alive\n\ndata: no id\n\nevent: herald.reset\ndata: {}\n\n"
	want := []Block{
		{ID: "", Comments: []string{"ok"}},
		{Retry: 1500 * time.Millisecond, HasRetry: true},
		{ID: "e-0", HasID: true},
		{ID: "e-1", HasID: true, Type: "up", Data: "a\nb", HasData: true},
		{ID: "e-1", Comments: []string{"keep-alive"}},
		{ID: "e-1", Type: "message", Data: "no id", HasData: true},
		{ID: "e-1", Type: "herald.reset", Data: "{}", HasData: true},
	}
	r := NewBlockReader(strings.NewReader(stream))
	for i, w := range want {
		b, err := r.Next()
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		b.Raw = ""
		if b.String() != w.String() || b.ID != w.ID {
			t.Errorf("block %d: %v (id %q), want %v (id %q)", i, b, b.ID, w, w.ID)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	for _, bad := range []string{"id: 1\ndata: x", "data: x\r\n\r\n"} {
		if _, err := NewBlockReader(strings.NewReader(bad)).Next(); err == nil || errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%q: %v, want an error", bad, err)
		}
	}
}
