// Package progress_test checks progress streams end to end over real HTTP:
// retained events (a topic's current state) and final events (a topic's
// clean end), as POST /publish and GET /events expose them.
package progress_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// stream is an open subscription, read block by block (testkit.Stream):
// tests see every id the client is given, position markers included.
type stream struct{ *testkit.Stream }

// block is one block of a stream.
type block = testkit.Block

func eventsURL(base string, topics ...string) string {
	q := url.Values{"topic": topics}
	return base + "/events?" + q.Encode()
}

// subscribe opens GET /events for topics and expects a 200 stream.
func subscribe(t *testing.T, base, lastID string, topics ...string) stream {
	t.Helper()
	return stream{testkit.Subscribe(t, nil, eventsURL(base, topics...), testkit.LastEventID(lastID))}
}

// get sends GET rawURL with Last-Event-ID lastID (if set) and returns the
// answer, whatever it is; the request ends when the test does.
func get(t *testing.T, rawURL, lastID string) *http.Response {
	t.Helper()
	resp, cancel := testkit.Get(t, nil, rawURL, testkit.LastEventID(lastID))
	t.Cleanup(cancel)
	return resp
}

// next returns the next block that carries an id or data (not a comment
// or a retry hint), failing the test if none comes in time or the stream
// ends.
func (s stream) next(t *testing.T) block {
	t.Helper()
	for {
		b, ok := s.NextBlock(t)
		if !ok {
			t.Fatal("stream ended while an event was expected")
		}
		if b.HasID || b.HasData {
			return b
		}
	}
}

// nextEvent skips position markers and returns the next event with data.
func (s stream) nextEvent(t *testing.T) block {
	t.Helper()
	for {
		if b := s.next(t); b.HasData {
			return b
		}
	}
}

// expectEnd waits until the server ends the stream cleanly, failing on
// any further event or position.
func (s stream) expectEnd(t *testing.T) {
	t.Helper()
	rest, err := s.End(t)
	if err != nil {
		t.Fatalf("stream ended with a read error: %v", err)
	}
	for _, b := range rest {
		if b.HasID || b.HasData {
			t.Fatalf("got %v, want the end of the stream", b)
		}
	}
}

// expectQuiet checks that no event with data arrives for d.
func (s stream) expectQuiet(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		b, err := s.NextBlockWithin(time.Until(deadline))
		switch {
		case err == nil && b.HasData:
			t.Fatalf("unexpected event %v", b)
		case err == nil:
		case errors.Is(err, testkit.ErrTimeout):
			return // nothing within d
		default:
			t.Fatalf("stream ended unexpectedly: %v", err)
		}
	}
}

// publish posts a form to /publish and returns the status and the JSON body.
func publish(t *testing.T, base string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(base+"/publish", form)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp)
}

func publishJSON(t *testing.T, base, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(base+"/publish", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, resp)
}

func decode(t *testing.T, resp *http.Response) (int, map[string]any) {
	t.Helper()
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("decode response (status %d): %v", resp.StatusCode, err)
	}
	return resp.StatusCode, v
}

// mustPublish publishes and returns the event id.
func mustPublish(t *testing.T, base string, form url.Values) string {
	t.Helper()
	status, body := publish(t, base, form)
	if status != http.StatusOK {
		t.Fatalf("publish %v: status %d, body %v", form, status, body)
	}
	id, _ := body["id"].(string)
	if id == "" {
		t.Fatalf("publish %v: no id in %v", form, body)
	}
	return id
}

func msg(topic, data string, flags ...string) url.Values {
	v := url.Values{"topic": {topic}, "data": {data}}
	for _, f := range flags {
		v.Set(f, "true")
	}
	return v
}

func start(t *testing.T, mutate func(*config.Server)) *apptest.Server {
	t.Helper()
	return apptest.Start(t, mutate)
}

func want(t *testing.T, got block, id, data string) {
	t.Helper()
	if got.Data != data || (id != "" && got.ID != id) {
		t.Fatalf("got %v, want id %q data %q", got, id, data)
	}
}

func TestLateJoinerGetsLatestRetainedOfEachTopicFirst(t *testing.T) {
	srv := start(t, nil)
	mustPublish(t, srv.URL, msg("job", "10%", "retain"))
	mustPublish(t, srv.URL, msg("other", "other state", "retain"))
	job20 := mustPublish(t, srv.URL, msg("job", "20%", "retain"))
	mustPublish(t, srv.URL, msg("job", "a log line, not state"))
	mustPublish(t, srv.URL, msg("unfollowed", "x", "retain"))
	otherNew := mustPublish(t, srv.URL, msg("other", "newer other state", "retain"))

	s := subscribe(t, srv.URL, "", "job", "other")
	// The latest retained event of each followed topic, in log order.
	want(t, s.next(t), job20, "20%")
	want(t, s.next(t), otherNew, "newer other state")
	// Then live events only.
	live := mustPublish(t, srv.URL, msg("job", "30%", "retain"))
	want(t, s.nextEvent(t), live, "30%")

	// A topic with nothing retained: a new subscriber gets no history at
	// all, only a position marker, then live events.
	mustPublish(t, srv.URL, msg("plain", "old"))
	p := subscribe(t, srv.URL, "", "plain")
	if b := p.next(t); b.HasData || !b.HasID {
		t.Fatalf("first block %v, want an id-only position marker", b)
	}
	live = mustPublish(t, srv.URL, msg("plain", "new"))
	want(t, p.nextEvent(t), live, "new")
}

func TestRetainViaJSONAndForm(t *testing.T) {
	srv := start(t, nil)
	for _, tc := range []struct {
		name string
		pub  func() (int, map[string]any)
	}{
		{"form retain=true", func() (int, map[string]any) { return publish(t, srv.URL, msg("t1", "state", "retain")) }},
		{"form retain=1", func() (int, map[string]any) {
			return publish(t, srv.URL, url.Values{"topic": {"t2"}, "data": {"state"}, "retain": {"1"}})
		}},
		{"json retain", func() (int, map[string]any) {
			return publishJSON(t, srv.URL, `{"topic":"t3","data":"state","retain":true}`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := tc.pub()
			if status != http.StatusOK {
				t.Fatalf("status %d, body %v", status, body)
			}
			topic := map[string]string{"form retain=true": "t1", "form retain=1": "t2", "json retain": "t3"}[tc.name]
			s := subscribe(t, srv.URL, "", topic)
			want(t, s.next(t), body["id"].(string), "state")
		})
	}
	t.Run("bad boolean", func(t *testing.T) {
		for _, field := range []string{"retain", "final"} {
			status, body := publish(t, srv.URL, url.Values{"topic": {"t"}, "data": {"x"}, field: {"maybe"}})
			if status != http.StatusBadRequest || !strings.Contains(body["error"].(string), field) {
				t.Fatalf("%s=maybe: status %d, body %v; want 400 naming the field", field, status, body)
			}
		}
		status, body := publishJSON(t, srv.URL, `{"topic":"t","data":"x","final":"yes"}`)
		if status != http.StatusBadRequest || body["error"] == nil {
			t.Fatalf(`"final":"yes": status %d, body %v; want 400`, status, body)
		}
	})
}

func TestResumeReplaysExactlyNeverRetainedTwice(t *testing.T) {
	srv := start(t, nil)
	r1 := mustPublish(t, srv.URL, msg("job", "10%", "retain"))

	// A new subscriber gets the retained event, which is also the head:
	// no extra marker is needed.
	s := subscribe(t, srv.URL, "", "job")
	want(t, s.next(t), r1, "10%")
	r2 := mustPublish(t, srv.URL, msg("job", "20%", "retain"))
	n := mustPublish(t, srv.URL, msg("job", "note"))
	want(t, s.next(t), r2, "20%")
	want(t, s.next(t), n, "note")

	// Resuming from the retained event: what came after, once each; the
	// retained state (20%) comes as history, not again as retained.
	r := subscribe(t, srv.URL, r1, "job")
	want(t, r.next(t), r2, "20%")
	want(t, r.next(t), n, "note")
	r.expectQuiet(t, 200*time.Millisecond)

	// Resuming from the newest event: nothing is replayed, not even the
	// retained 20%.
	r = subscribe(t, srv.URL, n, "job")
	r.expectQuiet(t, 200*time.Millisecond)
	live := mustPublish(t, srv.URL, msg("job", "30%", "retain"))
	want(t, r.nextEvent(t), live, "30%")

	// Resuming from a position marker (the head when an event of another
	// topic is newer): nothing is replayed either.
	mustPublish(t, srv.URL, msg("elsewhere", "x"))
	m := subscribe(t, srv.URL, "", "job")
	want(t, m.next(t), live, "30%")
	marker := m.next(t)
	if marker.HasData || !marker.HasID {
		t.Fatalf("got %v, want the position marker", marker)
	}
	r = subscribe(t, srv.URL, marker.ID, "job")
	r.expectQuiet(t, 200*time.Millisecond)
}

func TestFinalEndsStreamsThen204(t *testing.T) {
	srv := start(t, nil)
	p0 := mustPublish(t, srv.URL, msg("job", "0%", "retain"))
	a := subscribe(t, srv.URL, "", "job")
	b := subscribe(t, srv.URL, "", "job")
	// A subscriber of the job and of a topic that goes on.
	both := subscribe(t, srv.URL, "", "job", "news")
	for _, s := range []stream{a, b, both} {
		want(t, s.next(t), p0, "0%")
	}
	p50 := mustPublish(t, srv.URL, msg("job", "50%", "retain"))
	fin := mustPublish(t, srv.URL, msg("job", "done", "retain", "final"))

	for _, s := range []stream{a, b} {
		want(t, s.nextEvent(t), p50, "50%")
		want(t, s.nextEvent(t), fin, "done")
		s.expectEnd(t)
	}
	want(t, both.nextEvent(t), p50, "50%")
	want(t, both.nextEvent(t), fin, "done")
	news := mustPublish(t, srv.URL, msg("news", "still here"))
	want(t, both.nextEvent(t), news, "still here")

	check204 := func(name, lastID string, topics ...string) {
		t.Helper()
		resp := get(t, eventsURL(srv.URL, topics...), lastID)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
			t.Fatalf("%s: status %d body %q, want 204 No Content", name, resp.StatusCode, body)
		}
	}
	// An EventSource reconnecting after the final event, and a new one.
	check204("reconnect at the final event", fin, "job")
	check204("new subscription", "", "job")
	// The query parameter form of the position counts too.
	resp := get(t, eventsURL(srv.URL, "job")+"&lastEventID="+url.QueryEscape(fin), "")
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("lastEventID=%s: status %d, want 204", fin, resp.StatusCode)
	}
	// A later position (events of other topics since) is after the final too.
	check204("reconnect after the final event", news, "job")

	// A subscriber that missed the end gets what it missed, the final event
	// last, and then its stream ends.
	late := subscribe(t, srv.URL, p0, "job")
	want(t, late.next(t), p50, "50%")
	want(t, late.next(t), fin, "done")
	late.expectEnd(t)

	// A finished topic among open ones does not end the subscription.
	mixed := subscribe(t, srv.URL, "", "job", "news")
	want(t, mixed.nextEvent(t), fin, "done") // the job's retained state
	n2 := mustPublish(t, srv.URL, msg("news", "more"))
	want(t, mixed.nextEvent(t), n2, "more")
}

func TestPublishToFinishedTopicIs409(t *testing.T) {
	srv := start(t, nil)
	mustPublish(t, srv.URL, msg("job", "done", "final"))
	for _, tc := range []struct {
		name string
		pub  func() (int, map[string]any)
	}{
		{"form", func() (int, map[string]any) { return publish(t, srv.URL, msg("job", "more")) }},
		{"form final again", func() (int, map[string]any) { return publish(t, srv.URL, msg("job", "again", "final")) }},
		{"json", func() (int, map[string]any) { return publishJSON(t, srv.URL, `{"topic":"job","data":"more"}`) }},
		{"json, one of several topics", func() (int, map[string]any) {
			return publishJSON(t, srv.URL, `{"topics":["fresh","job"],"data":"more"}`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := tc.pub()
			msg, _ := body["error"].(string)
			if status != http.StatusConflict || !strings.Contains(msg, "finished") {
				t.Fatalf("status %d, body %v; want 409 with an error saying the topic is finished", status, body)
			}
		})
	}
	// Nothing of the refused multi-topic event reached "fresh".
	s := subscribe(t, srv.URL, "", "fresh")
	if b := s.next(t); b.HasData {
		t.Fatalf("fresh got %v", b)
	}
}

func TestFinishedTopicsForgottenAfterRetention(t *testing.T) {
	const maxAge = 200 * time.Millisecond
	srv := start(t, func(c *config.Server) {
		c.History.MaxAge = maxAge
		c.Chat.Retention = maxAge // may not exceed it
	})
	mustPublish(t, srv.URL, msg("job", "50%", "retain"))
	fin := mustPublish(t, srv.URL, msg("job", "done", "final"))
	if status, _ := publish(t, srv.URL, msg("job", "x")); status != http.StatusConflict {
		t.Fatalf("right after the final event: status %d, want 409", status)
	}

	// The broker sweeps once a second; allow a few sweeps.
	var id string
	testkit.WaitWithin(t, 5*time.Second, fmt.Sprintf("the finished topic to be forgotten (max age %s)", maxAge), func() bool {
		status, body := publish(t, srv.URL, msg("job", "a new life", "retain"))
		if status != http.StatusOK && status != http.StatusConflict {
			t.Fatalf("status %d, body %v", status, body)
		}
		if status == http.StatusOK {
			id = body["id"].(string)
		}
		return status == http.StatusOK
	})
	// The topic is an ordinary one again: a new subscriber gets its new
	// retained state, and one reconnecting at the old final event gets
	// what followed it, not a 204.
	want(t, subscribe(t, srv.URL, "", "job").next(t), id, "a new life")
	want(t, subscribe(t, srv.URL, fin, "job").nextEvent(t), id, "a new life")
}

// offsetOf returns the offset part of an event id, for ordering checks.
func offsetOf(t *testing.T, id string) uint64 {
	t.Helper()
	i := strings.LastIndexByte(id, '-')
	n, err := strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		t.Fatalf("bad id %q", id)
	}
	return n
}

// A backend job as docs/protocol.md describes it: 0..100% retained, then a
// final event; a watcher that joins mid-way sees the current percentage at
// once, every later step once, and a clean end.
func TestProgressJobWorkedExample(t *testing.T) {
	if testing.Short() && os.Getenv("CI") == "" {
		t.Skip("short mode")
	}
	srv := start(t, nil)
	topic := "jobs/42"
	var ids []string
	for p := 0; p <= 40; p += 10 {
		ids = append(ids, mustPublish(t, srv.URL, url.Values{"topic": {topic}, "event": {"progress"}, "data": {strconv.Itoa(p)}, "retain": {"true"}}))
	}
	w := subscribe(t, srv.URL, "", topic)
	first := w.next(t)
	if first.Type != "progress" || first.Data != "40" || first.ID != ids[4] {
		t.Fatalf("late joiner's first event %v, want the retained 40", first)
	}
	for p := 50; p <= 100; p += 10 {
		ids = append(ids, mustPublish(t, srv.URL, url.Values{"topic": {topic}, "event": {"progress"}, "data": {strconv.Itoa(p)}, "retain": {"true"}}))
	}
	done := mustPublish(t, srv.URL, url.Values{"topic": {topic}, "event": {"done"}, "data": {`{"url":"/reports/42.pdf"}`}, "final": {"true"}})
	last := offsetOf(t, first.ID)
	for p := 50; p <= 100; p += 10 {
		b := w.nextEvent(t)
		if b.Data != strconv.Itoa(p) || offsetOf(t, b.ID) <= last {
			t.Fatalf("got %v, want progress %d after offset %d", b, p, last)
		}
		last = offsetOf(t, b.ID)
	}
	want(t, w.nextEvent(t), done, `{"url":"/reports/42.pdf"}`)
	w.expectEnd(t)
}

// A final event a subscriber may not see (private, and the subscriber has
// no access to private events) still ends its stream: the subscriber gets
// the final event's id without its data, so that its reconnect gets 204
// instead of waiting forever on a finished topic.
func TestPrivateFinalEndsStreamsOfThoseWhoCannotSeeIt(t *testing.T) {
	srv := start(t, nil)
	p := mustPublish(t, srv.URL, msg("job", "50%", "retain"))
	live := subscribe(t, srv.URL, "", "job")
	want(t, live.next(t), p, "50%")
	fin := mustPublish(t, srv.URL, msg("job", "secret result", "final", "private"))
	if b := live.next(t); b.HasData || b.ID != fin {
		t.Fatalf("got %v, want an id-only block with the final event's id %s", b, fin)
	}
	live.expectEnd(t)

	// Resuming from before the final event: the same.
	late := subscribe(t, srv.URL, p, "job")
	if b := late.next(t); b.HasData || b.ID != fin {
		t.Fatalf("got %v, want an id-only block with the final event's id %s", b, fin)
	}
	late.expectEnd(t)

	resp := get(t, eventsURL(srv.URL, "job"), fin)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("reconnect at the final event: status %d, want 204", resp.StatusCode)
	}
}

// The byte cap never evicts a topic's newest event (it is shared fairly,
// the busiest topic's oldest events go first): a finished topic keeps its
// final event however much other topics publish, so a client resuming from
// before it gets it, exactly, and its stream ends. (The hub's handling of
// a final event that did leave history is in internal/hub's
// TestEvictedFinal.)
func TestFinalEventOutlivesTheByteCap(t *testing.T) {
	srv := start(t, func(c *config.Server) { c.History.MaxBytes = 4 << 10 })
	p := mustPublish(t, srv.URL, msg("job", "50%"))
	fin := mustPublish(t, srv.URL, msg("job", "done", "final"))
	for i := 0; i < 20; i++ {
		mustPublish(t, srv.URL, msg("filler", strings.Repeat("x", 1000)))
	}
	if status, _ := publish(t, srv.URL, msg("job", "more")); status != http.StatusConflict {
		t.Fatalf("publish after the final: status %d, want 409 (the topic is finished)", status)
	}
	s := subscribe(t, srv.URL, p, "job")
	done := s.next(t)
	if done.Type == "herald.reset" || done.ID != fin || done.Data != "done" {
		t.Fatalf("got %v, want the final event %s", done, fin)
	}
	s.expectEnd(t)
	resp := get(t, eventsURL(srv.URL, "job"), fin)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("reconnect at the final event: status %d, want 204", resp.StatusCode)
	}
}
