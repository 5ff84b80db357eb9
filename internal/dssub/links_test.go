package dssub_test

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/dssub"
	"github.com/heraldpush/herald/internal/testkit"
)

// TestMaxLinks: a subscription follows at most MaxLinks streams (each
// change writes them all in one record): an explicit link beyond is
// refused with 400, and a stream the pattern matches beyond is not
// linked.
func TestMaxLinks(t *testing.T) {
	n := newNode(t, newBroker(t), func(o *dssub.Options) { o.MaxLinks = 2 })
	n.do(t, "PUT", "/v1/stream/w", `[]`, jsonCT)
	if r := n.do(t, "PUT", subs+"e", `{"type":"pull-wake","streams":["x/1","x/2"],"wake_stream":"w"}`, jsonCT); r.status != 201 {
		t.Fatalf("create with 2 streams: %d %s", r.status, r.body)
	}
	if r := n.do(t, "POST", subs+"e/streams", `{"streams":["x/3"]}`, jsonCT); r.status != 400 || r.code(t) != "INVALID_REQUEST" {
		t.Fatalf("an explicit link beyond MaxLinks: %d %s, want 400", r.status, r.body)
	}
	if r := n.do(t, "PUT", subs+"e3", `{"type":"pull-wake","streams":["x/1","x/2","x/3"],"wake_stream":"w"}`, jsonCT); r.status != 400 {
		t.Fatalf("create with 3 streams: %d %s, want 400", r.status, r.body)
	}

	for _, id := range []string{"p", "q"} {
		pattern := map[string]string{"p": "a/*", "q": "z/*"}[id]
		if r := n.do(t, "PUT", subs+id, `{"type":"pull-wake","pattern":"`+pattern+`","wake_stream":"w"}`, jsonCT); r.status != 201 {
			t.Fatalf("create %s: %d %s", id, r.status, r.body)
		}
	}
	links := func(id string) string { return n.do(t, "GET", subs+id, "").body }
	for _, p := range []string{"a/1", "a/2", "a/3", "z/1"} {
		n.do(t, "PUT", "/v1/stream/"+p, `{"n":1}`, jsonCT)
	}
	// Writes are matched in order, batch after batch: once z/2 (written
	// after z/1 was linked) is linked, a/3's write has been matched.
	if !testkit.Within(10*time.Second, func() bool { return strings.Contains(links("q"), `"path":"z/1"`) }) {
		t.Fatalf("z/1 not linked: %s", links("q"))
	}
	n.do(t, "PUT", "/v1/stream/z/2", `{"n":1}`, jsonCT)
	if !testkit.Within(10*time.Second, func() bool { return strings.Contains(links("q"), `"path":"z/2"`) }) {
		t.Fatalf("z/2 not linked: %s", links("q"))
	}
	if got := links("p"); strings.Count(got, `"link_type"`) != 2 || strings.Contains(got, `"path":"a/3"`) {
		t.Fatalf("want a/1 and a/2 linked, not a/3: %s", got)
	}
}
