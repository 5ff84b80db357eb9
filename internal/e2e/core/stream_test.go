package core_test

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
)

func TestStreamHeadersAndPrelude(t *testing.T) {
	srv := start(t, func(c *config.Server) { c.Core.Retry = 1234 * time.Millisecond })
	c := newClient(t)
	// The headers and a first comment arrive at once, with no event
	// published: Do would block otherwise.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, eventsURL(srv.URL, "news"), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for name, want := range map[string]string{
		"Content-Type":      "text/event-stream; charset=utf-8",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "" {
		t.Errorf("status %d, Content-Length %d %q: want 200 with no length", resp.StatusCode, resp.ContentLength, resp.Header.Get("Content-Length"))
	}
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("Transfer-Encoding %v", resp.TransferEncoding)
	}
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(first, ":") {
		t.Fatalf("first line %q (%v), want a comment", first, err)
	}
	var blocks []testkit.Block
	r := testkit.NewBlockReader(br)
	for len(blocks) < 2 {
		b, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, b)
	}
	// Then the retry hint in a block of its own, then the position marker.
	if blocks[0].Raw != "retry: 1234\n" || blocks[0].Retry != 1234*time.Millisecond {
		t.Errorf("second block %v, want the retry hint alone", blocks[0])
	}
	if blocks[1].Raw != "id: "+blocks[1].ID+"\n" || !strings.HasSuffix(blocks[1].ID, "-0") {
		t.Errorf("third block %v, want an id-only position marker at offset 0", blocks[1])
	}
}

func TestKeepAliveComments(t *testing.T) {
	srv := start(t, func(c *config.Server) { c.Core.KeepAlive = 50 * time.Millisecond })
	c := newClient(t)
	s := subscribe(t, c, eventsURL(srv.URL, "quiet"), "")
	s.NextID(t)
	for range 3 {
		b, ok := s.NextBlock(t)
		if !ok || b.HasData || b.HasID || len(b.Comments) == 0 {
			t.Fatalf("idle stream sent %v, want a keep-alive comment", b)
		}
	}
}

func TestPublishAndReceive(t *testing.T) {
	srv := start(t, nil)
	c := newClient(t)
	s := subscribe(t, c, eventsURL(srv.URL, "a"), "")
	s.NextID(t)

	// Form, JSON string, JSON value, event type, several lines.
	for _, tc := range []struct {
		ct, body   string
		wantEvent  string
		wantData   string
		wantTopics []string
	}{
		{"application/x-www-form-urlencoded", "topic=a&data=hello+form&event=greeting", "greeting", "hello form", nil},
		{"application/json", `{"topic":"a","data":"hello json"}`, "", "hello json", nil},
		{"application/json", `{"topics":["a","b"],"data":{"n": 1, "ok": true}}`, "", `{"n":1,"ok":true}`, nil},
		{"application/json; charset=utf-8", `{"topic":"a","data":[1, 2]}`, "", `[1,2]`, nil},
		{"application/json", `{"topic":"a","data":"line1\nline2\r\nline3\revent: evil\nid: 666\n\ndata: x"}`, "", "line1\nline2\nline3\nevent: evil\nid: 666\n\ndata: x", nil},
		{"application/json", `{"topic":"a"}`, "", "", nil},
	} {
		status, body, _ := post(t, c, srv.URL+"/publish", tc.ct, tc.body)
		if status != http.StatusOK {
			t.Fatalf("publish %s: %d %s", tc.body, status, body)
		}
		var r struct{ ID string }
		mustJSON(t, body, &r)
		ev := s.Next(t)
		if ev.ID != r.ID || ev.Type != cmp.Or(tc.wantEvent, "message") || ev.Data != tc.wantData {
			t.Errorf("published %s (id %s): got %v", tc.body, r.ID, ev)
		}
	}

	// A JSON array publishes a batch, in order.
	status, body, _ := post(t, c, srv.URL+"/publish", "application/json", `[{"topic":"a","data":"b1"},{"topic":"other","data":"x"},{"topic":"a","data":"b2","event":"e"}]`)
	if status != http.StatusOK {
		t.Fatalf("batch: %d %s", status, body)
	}
	var br struct{ IDs []string }
	mustJSON(t, body, &br)
	if len(br.IDs) != 3 {
		t.Fatalf("batch ids %v", br.IDs)
	}
	if ev := s.Next(t); ev.ID != br.IDs[0] || ev.Data != "b1" {
		t.Errorf("batch event 1: %v", ev)
	}
	if ev := s.Next(t); ev.ID != br.IDs[2] || ev.Data != "b2" || ev.Type != "e" {
		t.Errorf("batch event 3: %v", ev)
	}
}

// Newlines in data become several data lines: no field can be injected.
func TestNoFieldInjectionOnTheWire(t *testing.T) {
	srv := start(t, nil)
	c := newClient(t)
	resp, cancel := open(t, c, eventsURL(srv.URL, "inj"), "")
	defer cancel()
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	r := testkit.NewBlockReader(br)
	for { // skip to the position marker
		b, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if b.HasID {
			break
		}
	}
	id := publish(t, c, srv.URL, "x\n\nevent: evil\nid: 666\nretry: 1\r\n:c\rdata: y", "inj")
	var raw []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\n" {
			break
		}
		raw = append(raw, line)
	}
	want := []string{"id: " + id + "\n", "data: x\n", "data: \n", "data: event: evil\n", "data: id: 666\n", "data: retry: 1\n", "data: :c\n", "data: data: y\n"}
	if strings.Join(raw, "") != strings.Join(want, "") {
		t.Errorf("wire:\n%q\nwant\n%q", raw, want)
	}
}

func TestResume(t *testing.T) {
	c := newClient(t)
	// Each case has a server with: 1 b1, 2 c2, 3 a3, 4 b4, 5 c5, 6 a6.
	setup := func(t *testing.T) (string, []string) {
		srv := start(t, nil)
		ids := make([]string, 7)
		for i := 1; i <= 6; i++ {
			topic := []string{"a", "b", "c"}[i%3]
			ids[i] = publish(t, c, srv.URL, topic+string(rune('0'+i)), topic)
		}
		return srv.URL, ids
	}
	for _, tc := range []struct {
		name   string
		topics []string
		query  func(ids []string) string
		header func(ids []string) string
		want   []string
	}{
		{"Last-Event-ID header", []string{"a"}, nil, func(ids []string) string { return ids[3] }, []string{"a6"}},
		{"lastEventID query parameter", []string{"a"}, func(ids []string) string { return ids[1] }, nil, []string{"a3", "a6"}},
		{"header wins over the query", []string{"b"}, func(ids []string) string { return ids[4] }, func(ids []string) string { return ids[0+1] }, []string{"b4"}},
		{"several topics, one id", []string{"a", "b"}, nil, func(ids []string) string { return ids[2] }, []string{"a3", "b4", "a6"}},
		{"all topics from the start", []string{"c", "b", "a"}, nil, func(ids []string) string { return strings.TrimSuffix(ids[1], "-1") + "-0" },
			[]string{"b1", "c2", "a3", "b4", "c5", "a6"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, ids := setup(t)
			u := eventsURL(base, tc.topics...)
			if tc.query != nil {
				u += "&lastEventID=" + tc.query(ids)
			}
			header := ""
			if tc.header != nil {
				header = tc.header(ids)
			}
			s := subscribe(t, c, u, header)
			var got []string
			for len(got) < len(tc.want) {
				got = append(got, s.Next(t).Data)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			// Live events follow.
			id := publish(t, c, base, "live", "a", "b", "c")
			if ev := s.Next(t); ev.Data != "live" || ev.ID != id {
				t.Errorf("live event %v", ev)
			}
		})
	}
}

func TestResets(t *testing.T) {
	srv := start(t, func(c *config.Server) { c.History.MaxEvents = 2 })
	c := newClient(t)
	var ids []string
	for i := range 5 {
		ids = append(ids, publish(t, c, srv.URL, string(rune('0'+i)), "t"))
	}
	epoch := strings.TrimSuffix(ids[0], "-1")
	for _, tc := range []struct {
		name, lastID, reason string
		want                 []string
	}{
		{"history truncated", ids[0], "history-truncated", []string{"3", "4"}},
		{"epoch changed", "zzzzzzzzzz-3", "epoch-changed", []string{"3", "4"}},
		{"unparseable", "not an id", "invalid-id", []string{"3", "4"}},
		{"from the future", epoch + "-999", "invalid-id", []string{"3", "4"}},
		{"still in history: no reset", ids[2], "", []string{"3", "4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := subscribe(t, c, eventsURL(srv.URL, "t"), tc.lastID)
			first := s.Next(t)
			if tc.reason != "" {
				if first.Type != "herald.reset" || first.HasID {
					t.Fatalf("first event %v, want herald.reset without id", first)
				}
				var r struct {
					Reason      string `json:"reason"`
					LastEventID string `json:"lastEventId"`
				}
				mustJSON(t, []byte(first.Data), &r)
				if r.Reason != tc.reason || r.LastEventID != tc.lastID {
					t.Errorf("reset %+v, want reason %q lastEventId %q", r, tc.reason, tc.lastID)
				}
				first = s.Next(t)
			}
			got := []string{first.Data, s.Next(t).Data}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("after the reset: %v, want %v", got, tc.want)
			}
		})
	}
	m := metrics(t, c, srv.URL)
	for reason, want := range map[string]string{"history-truncated": "1", "epoch-changed": "1", "invalid-id": "2"} {
		if got := metricValue(m, `herald_resets_total{reason="`+reason+`"}`); got != want {
			t.Errorf("herald_resets_total %s = %q, want %s", reason, got, want)
		}
	}
}

func TestProbes(t *testing.T) {
	srv := start(t, nil)
	c := newClient(t)
	resp, err := c.Get(srv.URL + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Cache-Control") != "no-store" || len(body) != 0 {
		t.Errorf("/ping: %d Cache-Control %q body %q", resp.StatusCode, resp.Header.Get("Cache-Control"), body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var v map[string]any
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &v) != nil {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}

	// /metrics names every metric the issue asks for, after some traffic.
	s := subscribe(t, c, eventsURL(srv.URL, "m"), "")
	s.NextID(t)
	publish(t, c, srv.URL, "x", "m")
	s.Next(t)
	status, _, _ := post(t, c, srv.URL+"/publish", "application/json", `{}`)
	if status != http.StatusBadRequest {
		t.Fatalf("bad publish: %d", status)
	}
	m := metrics(t, c, srv.URL)
	for _, name := range []string{
		`herald_connections{transport="sse"} 1`,
		"herald_subscriptions ",
		"herald_events_published_total 1",
		"herald_events_delivered_total",
		"herald_events_dropped_total",
		"herald_events_replayed_total",
		`herald_resets_total{reason="history-truncated"}`,
		"herald_slow_consumer_disconnects_total",
		"herald_publish_duration_seconds_bucket",
		"herald_publish_duration_seconds_count 1",
		`herald_requests_rejected_total{reason="bad_request"} 1`,
	} {
		if !strings.Contains(m, "\n"+name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
	s.Close()
	noOpenStreams(t, c, srv, "m")
}

// A stream whose topics are all finished ends, and the EventSource's
// reconnect gets 204, which makes a browser stop reconnecting.
func TestFinishedTopicEndsWith204(t *testing.T) {
	srv := start(t, nil)
	c := newClient(t)
	s := subscribe(t, c, eventsURL(srv.URL, "job"), "")
	s.NextID(t)
	status, body, _ := post(t, c, srv.URL+"/publish", "application/json", `{"topic":"job","data":"done","final":true}`)
	if status != http.StatusOK {
		t.Fatalf("final: %d %s", status, body)
	}
	last := s.Next(t)
	if _, err := s.End(t); err != nil {
		t.Fatalf("stream after the final: %v, want a clean end", err)
	}
	resp, cancel := open(t, c, eventsURL(srv.URL, "job"), last.ID)
	defer cancel()
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("reconnect after the final: %d, want 204", resp.StatusCode)
	}
}

// The server must not hang on a client that sends half a request.
func TestHalfRequestIsDropped(t *testing.T) {
	srv := start(t, func(c *config.Server) { c.HTTP.ReadHeaderTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /events?topic=a HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Errorf("connection not closed by the server: %v", err)
	}
}
