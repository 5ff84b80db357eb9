package core_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/browsertest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
)

// page is a browser tab on a Herald origin, where tests run scripts.
type page struct {
	t   *testing.T
	ctx context.Context
}

// openPage opens a tab on the server's origin (its /healthz document), so
// that the page's EventSource is same-origin.
func openPage(t *testing.T, srv *apptest.Server) *page {
	t.Helper()
	ctx := browsertest.New(t, 90*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/healthz")); err != nil {
		t.Fatal(err)
	}
	return &page{t: t, ctx: ctx}
}

func eval[T any](p *page, js string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		p.t.Fatalf("evaluate %.80s: %v", js, err)
	}
	return v
}

func (p *page) waitFor(what, expr string) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		p.t.Fatalf("waiting for %s (%s): %v; page state %s", what, expr, err, eval[string](p, `JSON.stringify(window.rec)`))
	}
}

// recorder sets up window.rec and an EventSource on url that records into it.
const recorderJS = `(() => {
	window.rec = {data: [], ids: [], resets: [], opens: 0, errors: 0};
	const es = new EventSource(%q);
	window.es = es;
	es.onopen = () => rec.opens++;
	es.onerror = () => rec.errors++;
	es.onmessage = (e) => { rec.data.push(e.data); rec.ids.push(e.lastEventId); };
	es.addEventListener("herald.reset", (e) => rec.resets.push({data: JSON.parse(e.data), lastEventId: e.lastEventId}));
})()`

// TestBrowserEventSourceResumesExactly: a native EventSource in Chromium
// follows a topic while events are published and the server cuts its
// stream again and again; the browser reconnects by itself (after the
// server's retry hint) with Last-Event-ID, and ends with every event exactly
// once, in order.
func TestBrowserEventSourceResumesExactly(t *testing.T) {
	srv := start(t, func(c *config.Server) { c.Core.Retry = 100 * time.Millisecond })
	c := newClient(t)
	publish(t, c, srv.URL, "before the page", "b") // history it must not get
	p := openPage(t, srv)
	eval[chromedp.Void](p, fmt.Sprintf(recorderJS, "/events?topic=b"))
	p.waitFor("the EventSource to open", `rec.opens === 1`)

	// The server cuts the stream after every 25 events, and 25 more are
	// published while the page reconnects (they come from history): the
	// next cut waits until the page is back (a cut of a stream that is
	// not open would cut nothing).
	const n, every = 200, 25
	cuts := 0
	ids := make([]string, n)
	for i := range n {
		ids[i] = publish(t, c, srv.URL, strconv.Itoa(i), "b")
		if i%every == every-1 {
			p.waitFor("the EventSource to be open", fmt.Sprintf(`rec.opens === %d`, cuts+1))
			testkit.WaitFor(t, "the cut stream to be gone from the hub", func() bool {
				for _, st := range srv.App.Hub().TopicStats() {
					if st.Topic == "b" {
						return st.Subscribers == 1
					}
				}
				return false
			})
			if k := srv.App.Hub().Disconnect("b"); k != 1 {
				t.Fatalf("cut %d disconnected %d streams, want 1", cuts+1, k)
			}
			cuts++
		}
	}
	// A last event: a duplicate of any earlier one would come before it.
	last := publish(t, c, srv.URL, "last", "b")
	p.waitFor("every event", fmt.Sprintf(`rec.data.length >= %d && rec.data[rec.data.length-1] === "last"`, n+1))

	var rec struct {
		Data   []string
		IDs    []string
		Resets []json.RawMessage
		Opens  int
	}
	if err := json.Unmarshal([]byte(eval[string](p, `JSON.stringify(rec)`)), &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Data) != n+1 || rec.IDs[n] != last {
		t.Errorf("the page got %d events, want %d then the last one (id %s)", len(rec.Data), n, last)
	}
	for i := range min(n, len(rec.Data)) {
		if rec.Data[i] != strconv.Itoa(i) || rec.IDs[i] != ids[i] {
			t.Fatalf("event %d: data %q lastEventId %q; want %d %s (got %v)", i, rec.Data[i], rec.IDs[i], i, ids[i], rec.Data)
		}
	}
	if len(rec.Resets) != 0 {
		t.Errorf("resets: %s", rec.Resets)
	}
	if rec.Opens < 3 {
		t.Errorf("the EventSource opened %d times after %d cuts: the test did not cut it mid-stream", rec.Opens, cuts)
	}
	t.Logf("%d events, %d server cuts, %d opens", n, cuts, rec.Opens)
	eval[chromedp.Void](p, `es.close()`)
}

// TestBrowserHonoursPositionMarker checks that Chromium takes the id of an
// id-only block (the position marker a new subscriber gets first) as its
// last event id and sends it when it reconnects. The marker is the only id
// the page ever gets; two events are published while it is disconnected,
// the first evicted by the second (--history-max-events 1), so a reconnect
// with the marker's id gets a history-truncated reset that echoes the id it
// sent, and a reconnect without an id would get nothing at all.
func TestBrowserHonoursPositionMarker(t *testing.T) {
	srv := start(t, func(c *config.Server) {
		c.Core.Retry = 1500 * time.Millisecond
		c.History.MaxEvents = 1
	})
	c := newClient(t)
	publish(t, c, srv.URL, "x", "other") // the head is not 0
	head := publish(t, c, srv.URL, "y", "other")
	p := openPage(t, srv)
	eval[chromedp.Void](p, fmt.Sprintf(recorderJS, "/events?topic=pm"))
	// The open means the marker is on its way: the subscription's prelude
	// (the marker) is queued before the response head is written, and a
	// cut stream writes what is queued before it ends.
	p.waitFor("the EventSource to open", `rec.opens === 1`)

	if n := srv.App.Hub().Disconnect("pm"); n != 1 {
		t.Fatalf("Disconnect = %d", n)
	}
	publish(t, c, srv.URL, "missed-1", "pm")
	missed2 := publish(t, c, srv.URL, "missed-2", "pm")
	p.waitFor("the reconnect", `rec.opens === 2`)
	// An event after the reconnect comes after its prelude.
	publish(t, c, srv.URL, "after", "pm")
	p.waitFor("the event after the reconnect", `rec.data.includes("after")`)

	var rec struct {
		Data   []string
		IDs    []string
		Resets []struct {
			Data struct {
				Reason      string `json:"reason"`
				LastEventID string `json:"lastEventId"`
			}
			LastEventID string
		}
	}
	if err := json.Unmarshal([]byte(eval[string](p, `JSON.stringify(rec)`)), &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Resets) != 1 || rec.Resets[0].Data.LastEventID != head || rec.Resets[0].Data.Reason != "history-truncated" {
		t.Fatalf("Chromium does not resume from the id-only position marker %s: resets %+v, events %v", head, rec.Resets, rec.Data)
	}
	// The reset itself carries no id: the browser's last event id is still
	// the marker's when it is dispatched.
	if rec.Resets[0].LastEventID != head {
		t.Errorf("herald.reset dispatched with lastEventId %q, want the marker's %q", rec.Resets[0].LastEventID, head)
	}
	if len(rec.Data) != 2 || rec.Data[0] != "missed-2" || rec.IDs[0] != missed2 {
		t.Errorf("after the reset: %v %v, want missed-2 (missed-1 was evicted), then after", rec.Data, rec.IDs)
	}
	eval[chromedp.Void](p, `es.close()`)
}
