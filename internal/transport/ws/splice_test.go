package ws

import (
	"encoding/json"
	"testing"
)

// spliceID gives the bytes json.Marshal gives for the frame with the id,
// and refuses an id JSON would escape.
func TestSpliceID(t *testing.T) {
	for _, f := range []Frame{
		{Type: "event"},
		{Type: "event", Data: "d"},
		{Type: "event", Event: "t", Data: `<"&\>`, Final: true},
	} {
		body, _ := json.Marshal(f)
		for _, id := range []string{"e-1", "0~abc-12.1~def-3"} {
			with := f
			with.ID = id
			want, _ := json.Marshal(with)
			got, ok := spliceID(body, id)
			if !ok || string(got) != string(want) {
				t.Errorf("spliceID(%s, %q) = %s, %v; want %s", body, id, got, ok, want)
			}
		}
	}
	for _, id := range []string{`a"b`, `a\b`, "a<b", "a\nb", "é"} {
		if _, ok := spliceID([]byte(`{"type":"event"}`), id); ok {
			t.Errorf("spliceID took %q, which JSON escapes", id)
		}
	}
	if _, ok := spliceID([]byte(`{"type":"position","id":"x"}`), "y"); ok {
		t.Error("spliceID took a frame that is not an event")
	}
}
