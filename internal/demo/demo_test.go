package demo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/demo"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/sse"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fast is a server whose demo tasks step every 20ms.
func fast(c *config.Server) { c.Demo.TaskInterval = 20 * time.Millisecond }

// open subscribes to the demo's stream at rawURL (from lastID, "" for a
// new client) and checks it is a text/event-stream.
func open(t *testing.T, rawURL, lastID string) *testkit.Stream {
	t.Helper()
	s := testkit.Subscribe(t, nil, rawURL, testkit.LastEventID(lastID))
	if ct := s.Resp.Header.Get("Content-Type"); ct != "text/event-stream; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	return s
}

// expectEnd waits for the stream's clean end, with no more events.
func expectEnd(t *testing.T, s *testkit.Stream) {
	t.Helper()
	rest, err := s.End(t)
	if err != nil {
		t.Fatalf("the stream ended with %v, want a clean end", err)
	}
	for _, b := range rest {
		if b.HasData {
			t.Fatalf("got %v, want the end of the stream", b)
		}
	}
}

func expectEvent(t *testing.T, ev sse.Event, typ, data string) {
	t.Helper()
	if ev.Type != typ || ev.Data != data {
		t.Fatalf("got %s %q (id %q), want %s %q", ev.Type, ev.Data, ev.ID, typ, data)
	}
}

// call makes a request and returns the status, headers and body.
func call(t *testing.T, method, rawURL, contentType, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// expectJSONError checks a 4xx answer with a JSON {"error": ...} body.
func expectJSONError(t *testing.T, status int, h http.Header, body string, want int, mention string) {
	t.Helper()
	if status != want {
		t.Fatalf("status %d, want %d (body %s)", status, want, body)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var e struct{ Error string }
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
		t.Fatalf("body %q is not {\"error\": ...}", body)
	}
	if !strings.Contains(e.Error, mention) {
		t.Fatalf("error %q does not mention %q", e.Error, mention)
	}
}

func startTask(t *testing.T, base string) int {
	t.Helper()
	status, h, body := call(t, http.MethodPost, base+"/sse/start-task", "", "")
	if status != http.StatusOK || body != "Task started!" {
		t.Fatalf("start-task: status %d, body %q", status, body)
	}
	n, err := strconv.Atoi(h.Get(demo.TaskHeader))
	if err != nil || n < 1 {
		t.Fatalf("start-task: %s header %q", demo.TaskHeader, h.Get(demo.TaskHeader))
	}
	return n
}

func percent(p int) string { return fmt.Sprintf("%d%% completed", p) }

func offset(t *testing.T, id string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(id[strings.LastIndexByte(id, '-')+1:], 10, 64)
	if err != nil {
		t.Fatalf("bad id %q", id)
	}
	return n
}

func TestSubscribeGreetsThenStreams(t *testing.T) {
	srv := apptest.Start(t, nil)
	resp, err := http.Get(srv.URL + "/sse/subscribe")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for k, v := range map[string]string{
		"Content-Type":      "text/event-stream; charset=utf-8",
		"Cache-Control":     "no-cache",
		"X-Accel-Buffering": "no",
	} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	// The wire bytes: a flush comment, retry: 5000, then the greeting
	// exactly as the seed's SseEmitter sends it (no id, so that it never
	// disturbs the client's resume position).
	want := ": ok\n\nretry: 5000\n\nevent: CONNECTED\ndata: You are successfully connected to SSE server!\n\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("stream starts with %q, want %q", got, want)
	}
	// The decoder sees the greeting as an ordinary event, with retry set.
	d := sse.NewDecoder(strings.NewReader(want))
	ev, err := d.Next()
	if err != nil || ev.Type != "CONNECTED" || ev.Data != demo.ConnectedText || ev.ID != "" || d.Retry() != 5*time.Second {
		t.Fatalf("decoded %+v, retry %s, err %v", ev, d.Retry(), err)
	}
}

func TestSubscribeBadInput(t *testing.T) {
	srv := apptest.Start(t, fast)
	for _, tc := range []struct {
		method, path string
		status       int
		mention      string
	}{
		{http.MethodPost, "/sse/subscribe", http.StatusMethodNotAllowed, "GET"},
		{http.MethodDelete, "/sse/subscribe", http.StatusMethodNotAllowed, "GET"},
		{http.MethodGet, "/sse/subscribe?task=abc", http.StatusBadRequest, "task"},
		{http.MethodGet, "/sse/subscribe?task=0", http.StatusBadRequest, "task"},
		{http.MethodGet, "/sse/subscribe?task=-3", http.StatusBadRequest, "task"},
		{http.MethodGet, "/sse/subscribe?task=", http.StatusBadRequest, "task"},
		{http.MethodGet, "/sse/subscribe?task=1&task=2", http.StatusBadRequest, "task"},
		{http.MethodGet, "/sse/subscribe?task=99999999999999999999", http.StatusBadRequest, "task"},
		{http.MethodGet, "/sse/subscribe?task=7", http.StatusNotFound, "no such task"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			status, h, body := call(t, tc.method, srv.URL+tc.path, "", "")
			expectJSONError(t, status, h, body, tc.status, tc.mention)
		})
	}
}

func TestBroadcastReachesEverySubscriber(t *testing.T) {
	srv := apptest.Start(t, nil)
	subs := []*testkit.Stream{open(t, srv.URL+"/sse/subscribe", ""), open(t, srv.URL+"/sse/subscribe", "")}
	for _, s := range subs {
		expectEvent(t, s.Next(t), "CONNECTED", demo.ConnectedText)
	}
	for _, tc := range []struct {
		name, method, url, contentType, body, message string
	}{
		{"GET", http.MethodGet, "/sse/broadcast?message=Hello+SSE", "", "", "Hello SSE"},
		{"POST query", http.MethodPost, "/sse/broadcast?message=" + url.QueryEscape("héllo & <b>bye</b>"), "", "", "héllo & <b>bye</b>"},
		{"POST form", http.MethodPost, "/sse/broadcast", "application/x-www-form-urlencoded", "message=from+a+form", "from a form"},
		// Lines become several data: lines; no field injection.
		{"multi-line", http.MethodPost, "/sse/broadcast", "application/x-www-form-urlencoded", "message=" + url.QueryEscape("one\nid: 666\nevent: PWNED"), "one\nid: 666\nevent: PWNED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := call(t, tc.method, srv.URL+tc.url, tc.contentType, tc.body)
			if status != http.StatusOK || body != "Broadcast message: "+tc.message {
				t.Fatalf("status %d, body %q", status, body)
			}
			if ct := h.Get("Content-Type"); ct != "text/plain; charset=utf-8" || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("Content-Type %q, nosniff %q", ct, h.Get("X-Content-Type-Options"))
			}
			var id string
			for i, s := range subs {
				ev := s.Next(t)
				expectEvent(t, ev, "BROADCAST", tc.message)
				if ev.ID == "" || !ev.HasID {
					t.Fatalf("subscriber %d: BROADCAST without an id", i)
				}
				if i > 0 && ev.ID != id {
					t.Fatalf("subscribers got ids %q and %q for one broadcast", id, ev.ID)
				}
				id = ev.ID
			}
		})
	}
}

func TestBroadcastBadInput(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) { c.Demo.MaxMessageBytes = 1024 })
	form := "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name, method, url, contentType, body string
		status                               int
		mention                              string
	}{
		{"missing", http.MethodGet, "/sse/broadcast", "", "", http.StatusBadRequest, "message"},
		{"missing POST", http.MethodPost, "/sse/broadcast", form, "other=1", http.StatusBadRequest, "message"},
		{"empty", http.MethodGet, "/sse/broadcast?message=", "", "", http.StatusBadRequest, "empty"},
		{"twice", http.MethodGet, "/sse/broadcast?message=a&message=b", "", "", http.StatusBadRequest, "2 times"},
		{"invalid UTF-8", http.MethodGet, "/sse/broadcast?message=%ff%fe", "", "", http.StatusBadRequest, "UTF-8"},
		{"too large", http.MethodGet, "/sse/broadcast?message=" + strings.Repeat("x", 1025), "", "", http.StatusRequestEntityTooLarge, "limit"},
		{"body too large", http.MethodPost, "/sse/broadcast", form, "message=" + strings.Repeat("x", 200<<10), http.StatusRequestEntityTooLarge, "bytes"},
		{"malformed form", http.MethodPost, "/sse/broadcast", form, "message=%zz", http.StatusBadRequest, "malformed"},
		{"PUT", http.MethodPut, "/sse/broadcast?message=x", "", "", http.StatusMethodNotAllowed, "GET, POST"},
		{"HEAD", http.MethodHead, "/sse/broadcast?message=x", "", "", http.StatusMethodNotAllowed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := call(t, tc.method, srv.URL+tc.url, tc.contentType, tc.body)
			if tc.method == http.MethodHead { // no body; above all, no broadcast
				if status != tc.status {
					t.Fatalf("HEAD: status %d, want %d", status, tc.status)
				}
				return
			}
			expectJSONError(t, status, h, body, tc.status, tc.mention)
			if tc.status == http.StatusMethodNotAllowed && h.Get("Allow") != "GET, POST" {
				t.Fatalf("Allow %q", h.Get("Allow"))
			}
		})
	}
}

// A task's events: PROGRESS 0..100% by tens, each with its own, increasing
// id, then COMPLETE; on the demo stream and on the task's own stream, which
// then ends, and a reconnect gets 204.
func TestStartTaskProgressThenComplete(t *testing.T) {
	srv := apptest.Start(t, fast)
	main := open(t, srv.URL+"/sse/subscribe", "")
	expectEvent(t, main.Next(t), "CONNECTED", demo.ConnectedText)

	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			status, h, body := call(t, method, srv.URL+"/sse/start-task", "", "")
			if status != http.StatusOK || body != "Task started!" || h.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Fatalf("status %d, body %q, Content-Type %q", status, body, h.Get("Content-Type"))
			}
			n, _ := strconv.Atoi(h.Get(demo.TaskHeader))
			own := open(t, fmt.Sprintf("%s/sse/subscribe?task=%d", srv.URL, n), "")
			expectEvent(t, own.Next(t), "CONNECTED", demo.ConnectedText)

			var last uint64
			var ids []string
			for p := 0; p <= 100; p += 10 {
				ev := main.Next(t)
				expectEvent(t, ev, "PROGRESS", percent(p))
				if o := offset(t, ev.ID); o <= last {
					t.Fatalf("%s: id %s not after the previous one", ev.Data, ev.ID)
				} else {
					last = o
				}
				ids = append(ids, ev.ID)
			}
			complete := main.Next(t)
			expectEvent(t, complete, "COMPLETE", demo.CompleteText)

			// The task's own stream: the same events (the same ids: one
			// message each), its own COMPLETE, then the end. It may have
			// joined after the first steps: it then starts with the
			// retained current step.
			ev := own.Next(t)
			i := 0
			for i < len(ids) && ids[i] != ev.ID {
				i++
			}
			if i == len(ids) {
				t.Fatalf("task stream's first event %+v is none of the demo stream's steps", ev)
			}
			for p := i * 10; p <= 100; p += 10 {
				if p > i*10 {
					ev = own.Next(t)
				}
				expectEvent(t, ev, "PROGRESS", percent(p))
				if ev.ID != ids[p/10] {
					t.Fatalf("task stream: %s has id %s, demo stream had %s", ev.Data, ev.ID, ids[p/10])
				}
			}
			fin := own.Next(t)
			expectEvent(t, fin, "COMPLETE", demo.CompleteText)
			expectEnd(t, own)

			// The EventSource's reconnect: 204, it stops.
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/sse/subscribe?task=%d", srv.URL, n), nil)
			req.Header.Set("Last-Event-ID", fin.ID)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("task %d finished, Last-Event-ID %q: status %d, want 204", n, fin.ID, resp.StatusCode)
			}
			// A new follower learns how it ended: the final event alone,
			// with its id, then the end.
			late := open(t, fmt.Sprintf("%s/sse/subscribe?task=%d", srv.URL, n), "")
			if ev := late.Next(t); ev.Type != demo.TypeConnected {
				t.Fatalf("late follower: first event %+v, want the greeting", ev)
			}
			if ev := late.Next(t); ev.Type != demo.TypeComplete || ev.ID != fin.ID {
				t.Fatalf("late follower of a finished task: %+v, want COMPLETE with id %s", ev, fin.ID)
			}
			expectEnd(t, late)
		})
	}
}

func TestResumeMidTaskIsExact(t *testing.T) {
	srv := apptest.Start(t, fast)
	main := open(t, srv.URL+"/sse/subscribe", "")
	expectEvent(t, main.Next(t), "CONNECTED", demo.ConnectedText)
	startTask(t, srv.URL)
	var seen []sse.Event
	for p := 0; p <= 30; p += 10 {
		seen = append(seen, main.Next(t))
	}
	// Reconnect as an EventSource does, from the last id it saw.
	r := open(t, srv.URL+"/sse/subscribe", seen[len(seen)-1].ID)
	expectEvent(t, r.Next(t), "CONNECTED", demo.ConnectedText)
	for p := 40; p <= 100; p += 10 {
		ev := r.Next(t)
		expectEvent(t, ev, "PROGRESS", percent(p))
		if ev2 := main.Next(t); ev2.ID != ev.ID {
			t.Fatalf("resumed stream got %s as %s, the live one as %s", ev.Data, ev.ID, ev2.ID)
		}
	}
	expectEvent(t, r.Next(t), "COMPLETE", demo.CompleteText)
	// Also with the lastEventID query parameter (for clients that cannot
	// set headers): nothing more to replay, only live events.
	q := open(t, srv.URL+"/sse/subscribe?lastEventID="+url.QueryEscape(seen[0].ID), "")
	expectEvent(t, q.Next(t), "CONNECTED", demo.ConnectedText)
	expectEvent(t, q.Next(t), "PROGRESS", percent(10))
}

// A subscriber that joins mid-task gets the current percentage at once.
func TestLateSubscriberGetsRetainedProgress(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) { c.Demo.TaskInterval = 300 * time.Millisecond })
	n := startTask(t, srv.URL)
	watch := open(t, fmt.Sprintf("%s/sse/subscribe?task=%d", srv.URL, n), "")
	expectEvent(t, watch.Next(t), "CONNECTED", demo.ConnectedText)
	var step sse.Event
	for p := 0; p <= 20; p += 10 {
		step = watch.Next(t)
	}
	expectEvent(t, step, "PROGRESS", percent(20))
	// Joined between two steps (300ms apart): the first event after the
	// greeting is the retained 20% — not the next live step.
	for _, path := range []string{"/sse/subscribe", fmt.Sprintf("/sse/subscribe?task=%d", n)} {
		late := open(t, srv.URL+path, "")
		expectEvent(t, late.Next(t), "CONNECTED", demo.ConnectedText)
		ev := late.Next(t)
		expectEvent(t, ev, "PROGRESS", percent(20))
		if ev.ID != step.ID {
			t.Fatalf("%s: retained event id %s, want %s", path, ev.ID, step.ID)
		}
	}
	// /sse/tasks lists the running task with its progress.
	status, _, body := call(t, http.MethodGet, srv.URL+"/sse/tasks", "", "")
	var got demo.TasksResult
	if err := json.Unmarshal([]byte(body), &got); status != http.StatusOK || err != nil || len(got.Tasks) != 1 {
		t.Fatalf("/sse/tasks: status %d, body %s", status, body)
	}
	if ti := got.Tasks[0]; ti.Task != n || ti.Topic != demo.TaskTopic(n) || ti.Progress == nil || *ti.Progress < 20 {
		t.Fatalf("/sse/tasks: %+v", got.Tasks[0])
	}
}

// Several tasks at once: each task's stream carries its own steps only, in
// order; the demo stream carries all of them.
func TestConcurrentTasksDoNotMix(t *testing.T) {
	srv := apptest.Start(t, fast)
	main := open(t, srv.URL+"/sse/subscribe", "")
	expectEvent(t, main.Next(t), "CONNECTED", demo.ConnectedText)
	const tasks = 3
	var own [tasks]*testkit.Stream
	for i := range own {
		n := startTask(t, srv.URL)
		own[i] = open(t, fmt.Sprintf("%s/sse/subscribe?task=%d&lastEventID=", srv.URL, n), "")
	}
	allIDs := map[string]bool{}
	for i, s := range own {
		expectEvent(t, s.Next(t), "CONNECTED", demo.ConnectedText)
		ev := s.Next(t)
		first, err := strconv.Atoi(strings.TrimSuffix(ev.Data, "% completed"))
		if ev.Type != "PROGRESS" || err != nil {
			t.Fatalf("task %d: first event %+v", i, ev)
		}
		for p := first; p <= 100; p += 10 {
			if p > first {
				ev = s.Next(t)
			}
			expectEvent(t, ev, "PROGRESS", percent(p))
			if allIDs[ev.ID] {
				t.Fatalf("id %s seen on two task streams", ev.ID)
			}
			allIDs[ev.ID] = true
		}
		expectEvent(t, s.Next(t), "COMPLETE", demo.CompleteText)
		expectEnd(t, s)
	}
	progress, complete := 0, 0
	for progress < tasks*11 || complete < tasks {
		switch ev := main.Next(t); ev.Type {
		case "PROGRESS":
			progress++
		case "COMPLETE":
			complete++
		default:
			t.Fatalf("unexpected %+v", ev)
		}
	}
}

func TestStartTaskBadInputAndLimits(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) {
		c.Demo.TaskInterval = time.Hour // never steps during the test
		c.Demo.MaxTasks = 2
	})
	status, h, body := call(t, http.MethodDelete, srv.URL+"/sse/start-task", "", "")
	expectJSONError(t, status, h, body, http.StatusMethodNotAllowed, "GET, POST")
	status, h, body = call(t, http.MethodPost, srv.URL+"/sse/tasks", "", "")
	expectJSONError(t, status, h, body, http.StatusMethodNotAllowed, "GET")

	startTask(t, srv.URL)
	startTask(t, srv.URL)
	status, h, body = call(t, http.MethodPost, srv.URL+"/sse/start-task", "", "")
	expectJSONError(t, status, h, body, http.StatusTooManyRequests, "too many tasks")
	if h.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	status, _, body = call(t, http.MethodGet, srv.URL+"/sse/tasks", "", "")
	if status != http.StatusOK || body != `{"tasks":[{"task":1,"topic":"demo/task/1"},{"task":2,"topic":"demo/task/2"}]}`+"\n" {
		t.Fatalf("/sse/tasks: status %d, body %s", status, body)
	}
	// Stopping the server stops the two hour-long tasks at once (the
	// goroutine-leak check in TestMain sees any that did not stop).
	done := make(chan struct{})
	go func() { srv.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop with demo tasks running")
	}
}

// Once a finished task's topic is forgotten (after --history-max-age), its
// stream still answers 204 instead of hanging on an empty topic.
func TestForgottenTaskIs204(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) {
		fast(c)
		c.History.MaxAge = 100 * time.Millisecond
		c.Chat.Retention = c.History.MaxAge // may not exceed it
	})
	n := startTask(t, srv.URL)
	own := open(t, fmt.Sprintf("%s/sse/subscribe?task=%d", srv.URL, n), "")
	for {
		if ev := own.Next(t); ev.Type == "COMPLETE" {
			break
		}
	}
	expectEnd(t, own)
	// The broker sweeps once a second: wait until it forgot the topic.
	testkit.WaitFor(t, "the task's topic to be forgotten", func() bool { return forgotten(t, srv, n) })
	status, _, body := call(t, http.MethodGet, fmt.Sprintf("%s/sse/subscribe?task=%d", srv.URL, n), "", "")
	if status != http.StatusNoContent || body != "" {
		t.Fatalf("forgotten task: status %d, body %q; want 204", status, body)
	}
}

// forgotten reports whether the broker no longer remembers that task n's
// topic is finished.
func forgotten(t *testing.T, srv *apptest.Server, n int) bool {
	t.Helper()
	snap, err := srv.App.Hub().Broker().Read(context.Background(), pubsub.Query{Topics: []string{demo.TaskTopic(n)}})
	if err != nil {
		t.Fatal(err)
	}
	_, finished := snap.Finals[demo.TaskTopic(n)]
	return !finished
}

func TestPage(t *testing.T) {
	srv := apptest.Start(t, nil)
	status, h, body := call(t, http.MethodGet, srv.URL+"/", "", "")
	if status != http.StatusOK || h.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: status %d, Content-Type %q", status, h.Get("Content-Type"))
	}
	for _, want := range []string{`id="connect"`, `id="disconnect"`, `id="message"`, `id="broadcast"`, `id="start-task"`, `id="state"`, `id="tasks"`, `id="log"`, `src="/demo/demo.js"`, `href="/demo/demo.css"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	// Nothing from elsewhere: no CDN, no absolute URL.
	for _, name := range []string{"/", "/demo/demo.js", "/demo/demo.css"} {
		_, _, b := call(t, http.MethodGet, srv.URL+name, "", "")
		if strings.Contains(b, "http://") || strings.Contains(b, "https://") || strings.Contains(b, "//cdn") {
			t.Errorf("%s refers to another site", name)
		}
	}
	for name, ct := range map[string]string{"/demo/demo.js": "text/javascript; charset=utf-8", "/demo/demo.css": "text/css; charset=utf-8"} {
		status, h, body := call(t, http.MethodGet, srv.URL+name, "", "")
		if status != http.StatusOK || h.Get("Content-Type") != ct || len(body) == 0 {
			t.Fatalf("%s: status %d, Content-Type %q", name, status, h.Get("Content-Type"))
		}
		// Revalidation: the ETag gives a 304.
		req, _ := http.NewRequest(http.MethodGet, srv.URL+name, nil)
		req.Header.Set("If-None-Match", h.Get("ETag"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotModified {
			t.Fatalf("%s with its ETag: status %d, want 304", name, resp.StatusCode)
		}
	}
	status, h, body = call(t, http.MethodGet, srv.URL+"/demo/nope.js", "", "")
	expectJSONError(t, status, h, body, http.StatusNotFound, "no such endpoint")
	status, _, _ = call(t, http.MethodPost, srv.URL+"/", "", "")
	if status < 400 || status >= 500 {
		t.Fatalf("POST /: status %d", status)
	}
}

func TestDemoOff(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) { c.Demo.Enabled = false })
	for _, path := range []string{"/", "/demo/demo.js", "/sse/subscribe", "/sse/broadcast?message=x", "/sse/start-task", "/sse/tasks"} {
		status, h, body := call(t, http.MethodGet, srv.URL+path, "", "")
		expectJSONError(t, status, h, body, http.StatusNotFound, "no such endpoint")
	}
	// The core still works.
	status, _, _ := call(t, http.MethodGet, srv.URL+"/ping", "", "")
	if status != http.StatusNoContent {
		t.Fatalf("/ping: %d", status)
	}
}

// The stream's wire form is read line by line elsewhere; this checks that
// an idle demo stream gets keep-alive comments like /events.
func TestSubscribeKeepAlive(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) { c.Core.KeepAlive = 50 * time.Millisecond })
	s := testkit.Subscribe(t, nil, srv.URL+"/sse/subscribe", nil)
	for comments := 0; comments < 3; {
		b, ok := s.NextBlock(t)
		if !ok {
			t.Fatalf("the stream ended after %d keep-alive comments", comments)
		}
		if b.Raw == ":\n" {
			comments++
		}
	}
}
