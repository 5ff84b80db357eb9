package sseclient_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/browsertest"
	"github.com/heraldpush/herald/internal/ssecases"
)

// chromiumReconnectDelay is Chromium's reconnection time before a stream
// sets one (EventSource::kDefaultReconnectDelay).
const chromiumReconnectDelay = 3 * time.Second

// reconnect is what the test server saw of a case's second connection.
type reconnect struct {
	After        time.Duration // after the first answer ended
	HasLastID    bool
	LastEventID  string
	Reconnected  bool
	firstEnded   time.Time
	firstStarted bool
}

// In a real Chromium, every WHATWG case of the sse package, given whole and
// one byte per write: the events an EventSource dispatches (type, data,
// lastEventId), the Last-Event-ID it reconnects with, and when.
func TestChromiumEventSourceMatchesDecoder(t *testing.T) {
	cases := ssecases.Cases()
	modes := []string{"whole", "bytes"}

	var mu sync.Mutex
	seen := map[string]*reconnect{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /case/{i}/{mode}", func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(r.PathValue("i"))
		if err != nil || i < 0 || i >= len(cases) {
			http.NotFound(w, r)
			return
		}
		key := r.PathValue("i") + "/" + r.PathValue("mode")
		mu.Lock()
		rc := seen[key]
		if rc == nil {
			rc = &reconnect{}
			seen[key] = rc
		}
		first := !rc.firstStarted
		rc.firstStarted = true
		if !first && !rc.Reconnected {
			rc.Reconnected = true
			rc.After = time.Since(rc.firstEnded)
			_, rc.HasLastID = r.Header["Last-Event-Id"]
			rc.LastEventID = r.Header.Get("Last-Event-ID")
		}
		mu.Unlock()
		if !first {
			w.WriteHeader(http.StatusNoContent) // EventSource stops
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		rcn := http.NewResponseController(w)
		rcn.Flush()
		stream := cases[i].Stream()
		if r.PathValue("mode") == "bytes" {
			for j := range stream {
				w.Write(stream[j : j+1])
				rcn.Flush()
			}
		} else {
			w.Write(stream)
			rcn.Flush()
		}
		mu.Lock()
		rc.firstEnded = time.Now()
		mu.Unlock()
	})
	type pageCase struct {
		Path  string   `json:"path"`
		Types []string `json:"types"`
	}
	var page []pageCase
	for i, c := range cases {
		types := map[string]bool{"message": true}
		for _, ev := range c.Events {
			types[ev.Type] = true
		}
		// Types the stream names, in case Chromium dispatches one the
		// decoder does not.
		for _, line := range strings.FieldsFunc(string(c.Stream()), func(r rune) bool { return r == '\n' || r == '\r' }) {
			if v, ok := strings.CutPrefix(line, "event:"); ok {
				types[strings.TrimPrefix(v, " ")] = true
			}
		}
		var list []string
		for ty := range types {
			if ty != "" && ty != "error" && ty != "open" {
				list = append(list, ty)
			}
		}
		for _, m := range modes {
			page = append(page, pageCase{Path: fmt.Sprintf("/case/%d/%s", i, m), Types: list})
		}
	}
	pageJSON, _ := json.Marshal(page)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><script>
const cases = %s;
window.results = {};
for (const c of cases) {
  const r = window.results[c.path] = { events: [] };
  const es = new EventSource(c.path);
  const record = (e) => r.events.push({ type: e.type, data: e.data, lastEventId: e.lastEventId });
  for (const t of c.types) es.addEventListener(t, record);
}
</script>`, pageJSON)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ctx := browsertest.New(t, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	// Wait until every case that reconnects within the window has.
	window := chromiumReconnectDelay + 2*time.Second
	deadline := time.Now().Add(window + 10*time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		mu.Lock()
		n, started := 0, 0
		for _, rc := range seen {
			if rc.Reconnected {
				n++
			}
			if !rc.firstEnded.IsZero() {
				started++
			}
		}
		mu.Unlock()
		if started == len(page) && n == len(page) || time.Now().After(deadline) {
			break
		}
		<-tick.C
	}
	results, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]struct {
		Events []ssecases.Event `json:"events"`
	}](`window.results`))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, c := range cases {
		dev, deviates := chromiumDeviations[c.Name]
		for _, m := range modes {
			path := fmt.Sprintf("/case/%d/%s", i, m)
			wantEvents, whose := c.Events, "the decoder"
			if deviates && dev.events != nil {
				wantEvents, whose = dev.events, "its known deviation"
			}
			if got := results[path].Events; fmt.Sprint(got) != fmt.Sprint(wantEvents) && len(got)+len(wantEvents) > 0 {
				t.Errorf("%s (%s): Chromium dispatched %+v, %s %+v", c.Name, m, got, whose, wantEvents)
			}
			rc := seen[fmt.Sprintf("%d/%s", i, m)]
			if rc == nil {
				t.Errorf("%s (%s): never connected", c.Name, m)
				continue
			}
			want := chromiumReconnectDelay
			if c.RetryMS != nil {
				want = time.Duration(*c.RetryMS) * time.Millisecond
			}
			if deviates && dev.reconnect > 0 {
				want = dev.reconnect
			}
			if want > window {
				if rc.Reconnected {
					t.Errorf("%s (%s): reconnected after %v; the reconnection time is %v", c.Name, m, rc.After, want)
				}
				continue
			}
			if !rc.Reconnected {
				t.Errorf("%s (%s): did not reconnect; the reconnection time is %v", c.Name, m, want)
				continue
			}
			// HTTP strips the spaces around a header's value, in
			// Last-Event-ID as in any other.
			if wantID := strings.Trim(c.LastEventID, " \t"); rc.HasLastID != (c.LastEventID != "") || rc.LastEventID != wantID {
				t.Errorf("%s (%s): reconnected with Last-Event-ID %q (sent: %v), the decoder's last event id is %q", c.Name, m, rc.LastEventID, rc.HasLastID, c.LastEventID)
			}
			if rc.After < want-want/5-50*time.Millisecond || rc.After > want+2*time.Second {
				t.Errorf("%s (%s): reconnected after %v, the reconnection time is %v", c.Name, m, rc.After, want)
			}
		}
	}
	for name := range chromiumDeviations {
		if !slices.ContainsFunc(cases, func(c ssecases.Case) bool { return c.Name == name }) {
			t.Errorf("deviation %q: no such case", name)
		}
	}
}

// chromiumDeviations are the cases where Chromium departs from the WHATWG
// text and the sse decoder (and so the Go client) keeps to it; each is
// described in docs/client.md ("The Go client and the browsers"). The
// test checks that Chromium still does what is written here, so that a
// change in Chromium shows up.
var chromiumDeviations = map[string]struct {
	events    []ssecases.Event // what Chromium dispatches instead (nil: as the decoder)
	reconnect time.Duration    // Chromium's reconnection time instead (0: as the decoder)
}{
	// The standard's UTF-8 decode strips a leading BOM, then the line end
	// after it is an empty line. Chromium skips the BOM by restarting its
	// line after it without looking at the byte that follows, so an LF
	// right after the BOM becomes part of the next line: `\ndata: a` is a
	// field named `\ndata`, and the event is lost.
	"BOM then a blank line": {events: []ssecases.Event{}},
	// "retry" with an empty value: the standard sets the reconnection time
	// only from a value of ASCII digits, and ignores the field otherwise.
	// Chromium resets the reconnection time to its default (3 s) instead.
	"retry empty ignored": {reconnect: chromiumReconnectDelay},
	// A retry value past 2^64-1 ms: the standard sets the reconnection
	// time to it (the decoder clamps it to the longest time.Duration, so
	// the client never reconnects). Chromium cannot hold it in 64 bits
	// and ignores the field, keeping the time it had (here its default).
	"retry huge clamped": {reconnect: chromiumReconnectDelay},
}
