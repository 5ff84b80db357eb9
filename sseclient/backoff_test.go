package sseclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// These tests run the client in a synctest bubble against a scripted
// transport, so that every delay is measured on the fake clock, exactly.

// step is one scripted answer.
type step struct {
	status int
	header map[string]string
	body   []string // chunks, one per Read
	hang   bool     // after the chunks, block until the request ends (else EOF)
	err    error    // transport error instead of an answer
}

func sseOK(body ...string) step {
	return step{status: 200, header: map[string]string{"Content-Type": "text/event-stream"}, body: body}
}

// script is an http.RoundTripper that answers requests with its steps in
// order (204 once they are used up) and records when each came.
type script struct {
	mu    sync.Mutex
	steps []step
	reqs  []*http.Request
	times []time.Time
}

func (s *script) RoundTrip(req *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	s.times = append(s.times, time.Now())
	st := step{status: 204}
	if len(s.steps) > 0 {
		st, s.steps = s.steps[0], s.steps[1:]
	}
	s.mu.Unlock()
	if st.err != nil {
		return nil, st.err
	}
	resp := &http.Response{StatusCode: st.status, Header: make(http.Header), Request: req,
		Body: &scriptBody{ctx: req.Context(), chunks: st.body, hang: st.hang}}
	for k, v := range st.header {
		resp.Header.Set(k, v)
	}
	return resp, nil
}

// gaps returns the time between consecutive requests.
func (s *script) gaps() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	for i := 1; i < len(s.times); i++ {
		out = append(out, s.times[i].Sub(s.times[i-1]))
	}
	return out
}

type scriptBody struct {
	ctx    context.Context
	chunks []string
	hang   bool
}

func (b *scriptBody) Read(p []byte) (int, error) {
	if len(b.chunks) > 0 {
		n := copy(p, b.chunks[0])
		if b.chunks[0] = b.chunks[0][n:]; b.chunks[0] == "" {
			b.chunks = b.chunks[1:]
		}
		return n, nil
	}
	if b.hang {
		<-b.ctx.Done()
		return 0, b.ctx.Err()
	}
	return 0, io.EOF
}

func (b *scriptBody) Close() error { return nil }

// collect runs c.Events to its end and returns the data of the events and
// the final error.
func collect(ctx context.Context, c *Client) (data []string, err error) {
	for ev, err := range c.Events(ctx) {
		if err != nil {
			return data, err
		}
		data = append(data, ev.Data)
	}
	return data, nil
}

// within checks that got is in [lo, lo*1.5], the delay plus its jitter.
func within(t *testing.T, what string, got, lo time.Duration) {
	t.Helper()
	if got < lo || got > lo+lo/2 {
		t.Errorf("%s: waited %v, want %v to %v", what, got, lo, lo+lo/2)
	}
}

func TestBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		refused := errors.New("connection refused")
		s := &script{steps: []step{
			{err: refused},
			{status: 503},
			{status: 500},
			{err: refused},
			{err: refused}, // capped from here
			sseOK("retry: 700\n\nid: 1\ndata: a\n\n"),
			sseOK("data: b\n\n"), // opened: back to the server's retry time
			{status: 502},
			{status: 408},
		}}
		c := New("http://herald.test/events", &Options{
			HTTPClient:   &http.Client{Transport: s},
			InitialDelay: 100 * time.Millisecond,
			MaxDelay:     time.Second,
		})
		data, err := collect(t.Context(), c)
		if err != nil || strings.Join(data, ",") != "a,b" {
			t.Fatalf("got %q, %v; want [a b], nil (ended by 204)", data, err)
		}
		want := []time.Duration{
			100 * time.Millisecond, // first failure: the reconnection time
			200 * time.Millisecond, // doubled for each failure after the first
			400 * time.Millisecond,
			800 * time.Millisecond,
			time.Second,            // capped at MaxDelay
			700 * time.Millisecond, // the connection opened: retry: 700 from the stream
			700 * time.Millisecond,
			700 * time.Millisecond,
			time.Second, // 408 is retried too: doubled, capped
		}
		gaps := s.gaps()
		if len(gaps) != len(want) {
			t.Fatalf("%d reconnections, want %d: %v", len(gaps), len(want), gaps)
		}
		for i := range want {
			within(t, fmt.Sprintf("reconnection %d", i+1), gaps[i], want[i])
		}
	})
}

func TestRetryFieldLongerThanMaxDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []step{sseOK("retry: 5000\n\n"), {status: 500}, {status: 500}}}
		c := New("http://herald.test/", &Options{HTTPClient: &http.Client{Transport: s}, MaxDelay: time.Second})
		if _, err := collect(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		for i, g := range s.gaps() {
			within(t, fmt.Sprintf("reconnection %d", i+1), g, 5*time.Second)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		name   string
		status int
		value  func(now time.Time) string
		want   time.Duration
	}{
		{"429 seconds", 429, func(time.Time) string { return "7" }, 7 * time.Second},
		{"503 seconds", 503, func(time.Time) string { return "3" }, 3 * time.Second},
		{"503 http date", 503, func(now time.Time) string { return now.Add(9 * time.Second).UTC().Format(http.TimeFormat) }, 9 * time.Second},
		{"503 shorter than backoff", 503, func(time.Time) string { return "0" }, 2 * time.Second},
		{"503 invalid", 503, func(time.Time) string { return "soon" }, 2 * time.Second},
		{"500 ignores it", 500, func(time.Time) string { return "60" }, 2 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &script{steps: []step{{status: tt.status, header: map[string]string{"Retry-After": tt.value(time.Now())}}}}
				var seen error
				c := New("http://herald.test/", &Options{
					HTTPClient:   &http.Client{Transport: s},
					InitialDelay: 2 * time.Second,
					OnState: func(st State, err error) {
						if st == Connecting && err != nil {
							seen = err
						}
					},
				})
				if _, err := collect(t.Context(), c); err != nil {
					t.Fatal(err)
				}
				within(t, "wait", s.gaps()[0], tt.want)
				var se *StatusError
				if !errors.As(seen, &se) || se.StatusCode != tt.status || !se.Temporary() {
					t.Errorf("OnState saw %v, want a temporary *StatusError %d", seen, tt.status)
				}
			})
		})
	}
}

func TestStopsForGood(t *testing.T) {
	for _, tt := range []struct {
		name    string
		step    step
		wantErr string // "" for a clean end
		status  int
	}{
		{"204 ends cleanly", step{status: 204}, "", 0},
		{"401 with Herald's JSON", step{status: 401, header: map[string]string{"Content-Type": "application/json"}, body: []string{`{"error":"missing token"}`}}, "401 Unauthorized: missing token", 401},
		{"404 with text", step{status: 404, header: map[string]string{"Content-Type": "text/plain"}, body: []string{"  no such page\n"}}, "404 Not Found: no such page", 404},
		{"400 with html", step{status: 400, header: map[string]string{"Content-Type": "text/html"}, body: []string{"<h1>bad</h1>"}}, "400 Bad Request: <h1>bad</h1>", 400},
		{"400 with binary", step{status: 400, header: map[string]string{"Content-Type": "application/octet-stream"}, body: []string{"\x00\x01"}}, "400 Bad Request", 400},
		{"301 not followed", step{status: 301}, "301 Moved Permanently", 301},
		{"202", step{status: 202}, "202 Accepted", 202},
		{"200 not an event stream", step{status: 200, header: map[string]string{"Content-Type": "text/html"}}, `Content-Type "text/html"`, 0},
		{"200 without Content-Type", step{status: 200}, `Content-Type ""`, 0},
		{"event over MaxEventSize", sseOK("data: " + strings.Repeat("x", 100) + "\n\n"), "event too large", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &script{steps: []step{tt.step, sseOK("data: never\n\n")}}
				var states []string
				c := New("http://herald.test/", &Options{
					HTTPClient:   &http.Client{Transport: s},
					MaxEventSize: 64,
					OnState:      func(st State, err error) { states = append(states, fmt.Sprint(st, err != nil)) },
				})
				data, err := collect(t.Context(), c)
				if len(data) > 0 {
					t.Errorf("events %q, want none", data)
				}
				switch {
				case tt.wantErr == "" && err != nil:
					t.Errorf("err = %v, want nil", err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
				}
				var se *StatusError
				if tt.status != 0 && (!errors.As(err, &se) || se.StatusCode != tt.status || se.Temporary()) {
					t.Errorf("err = %#v, want a permanent *StatusError %d", err, tt.status)
				}
				if n := len(s.gaps()); n != 0 {
					t.Errorf("%d reconnections, want none", n)
				}
				if last := states[len(states)-1]; last != fmt.Sprint(Closed, tt.wantErr != "") {
					t.Errorf("last state %s, want closed", last)
				}
				if c.State() != Closed {
					t.Errorf("State() = %v after the end", c.State())
				}
			})
		})
	}
}

func TestLastEventIDHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []step{
			sseOK("id: 1\ndata: a\n\n", "id: 2\n\n"),        // an id-only block counts
			sseOK("data: b\n\n"),                            // no id: 2 stays
			sseOK("id: 3\ndata: c\n\nid: 4\ndata: partial"), // the cut-off event's id is not taken
			sseOK("id\ndata: d\n\n"),                        // an empty id resets it
			sseOK(": nothing\n\n"),
		}}
		var ids []string
		c := New("http://herald.test/", &Options{HTTPClient: &http.Client{Transport: s}, InitialDelay: time.Millisecond, LastEventID: "0"})
		for ev, err := range c.Events(t.Context()) {
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, ev.Data+"="+ev.ID)
		}
		if got, want := strings.Join(ids, " "), "a=1 b=2 c=3 d="; got != want {
			t.Errorf("events %q, want %q", got, want)
		}
		var sent []string
		for _, r := range s.reqs {
			sent = append(sent, fmt.Sprintf("%q", r.Header.Values("Last-Event-ID")))
		}
		if got, want := strings.Join(sent, " "), `["0"] ["2"] ["2"] ["3"] [] []`; got != want {
			t.Errorf("Last-Event-ID headers %s, want %s", got, want)
		}
		if r := s.reqs[0]; r.Header.Get("Accept") != "text/event-stream" || r.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("request headers %v", r.Header)
		}
	})
}

func TestStates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []step{{status: 500}, sseOK("data: a\n\n"), sseOK("data: b\n\n")}}
		var got []string
		var c *Client
		c = New("http://herald.test/", &Options{
			HTTPClient:   &http.Client{Transport: s},
			InitialDelay: time.Second,
			OnState: func(st State, err error) {
				if c.State() != st {
					t.Errorf("State() = %v inside OnState(%v)", c.State(), st)
				}
				e := "nil"
				if err != nil {
					e = "err"
				}
				got = append(got, st.String()+"/"+e)
			},
		})
		if c.State() != Closed {
			t.Errorf("State() before Events = %v, want closed", c.State())
		}
		for ev, err := range c.Events(t.Context()) {
			if err != nil {
				t.Fatal(err)
			}
			if c.State() != Open {
				t.Errorf("State() while an event is handled = %v", c.State())
			}
			if ev.Data == "b" {
				break // the caller stops
			}
		}
		want := "connecting/nil connecting/err open/nil connecting/err open/nil closed/nil"
		if g := strings.Join(got, " "); g != want {
			t.Errorf("states\n got %s\nwant %s", g, want)
		}
	})
}

func TestCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []step{{status: 503, header: map[string]string{"Retry-After": "3600"}}}}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		c := New("http://herald.test/", &Options{HTTPClient: &http.Client{Transport: s}})
		time.AfterFunc(time.Minute, cancel)
		start := time.Now()
		_, err := collect(ctx, c)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d != time.Minute {
			t.Errorf("ended after %v, want at the cancel (1m)", d)
		}
		if len(s.reqs) != 1 {
			t.Errorf("%d requests, want 1", len(s.reqs))
		}
	})
}

func TestCancelWhileReading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []step{{status: 200, header: map[string]string{"Content-Type": "text/event-stream"}, body: []string{"data: a\n\n"}, hang: true}}}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		c := New("http://herald.test/", &Options{HTTPClient: &http.Client{Transport: s}})
		var data []string
		var err error
		for ev, e := range c.Events(ctx) {
			if e != nil {
				err = e
				break
			}
			data = append(data, ev.Data)
			time.AfterFunc(time.Hour, cancel)
		}
		if !errors.Is(err, context.Canceled) || len(data) != 1 {
			t.Errorf("got %q, %v; want [a], context.Canceled", data, err)
		}
	})
}

func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []step{
			{status: 200, header: map[string]string{"Content-Type": "text/event-stream"}, body: []string{"data: a\n\n"}, hang: true},
			sseOK("data: b\n\n"),
		}}
		var causes []error
		c := New("http://herald.test/", &Options{
			HTTPClient:   &http.Client{Transport: s},
			IdleTimeout:  30 * time.Second,
			InitialDelay: time.Second,
			OnState: func(st State, err error) {
				if err != nil {
					causes = append(causes, err)
				}
			},
		})
		start := time.Now()
		data, err := collect(t.Context(), c)
		if err != nil || strings.Join(data, ",") != "a,b" {
			t.Fatalf("got %q, %v", data, err)
		}
		within(t, "reconnection after the idle timeout", s.times[1].Sub(start), 31*time.Second)
		if len(causes) == 0 || !errors.Is(causes[0], errIdle) {
			t.Errorf("OnState causes %v, want the idle timeout first", causes)
		}
	})
}

func TestErrBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []step{sseOK("data: a\n\n", "data: b\n\n")}}
		c := New("http://herald.test/", &Options{HTTPClient: &http.Client{Transport: s}})
		for range c.Events(t.Context()) {
			_, err := collect(t.Context(), c)
			if !errors.Is(err, ErrBusy) {
				t.Errorf("second Events: %v, want ErrBusy", err)
			}
			break
		}
		// Once the first has ended, Events runs again and resumes.
		data, err := collect(t.Context(), c)
		if err != nil || len(data) != 0 {
			t.Errorf("after: %q, %v", data, err)
		}
	})
}

func TestDecoderErrorIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		broken := errors.New("connection reset by peer")
		s := &script{steps: []step{
			{status: 200, header: map[string]string{"Content-Type": "text/event-stream"}, body: []string{"id: 1\ndata: a\n\n"}},
			sseOK("data: b\n\n"),
		}}
		c := New("http://herald.test/", &Options{HTTPClient: &http.Client{Transport: &failingBody{s, broken}}, InitialDelay: time.Millisecond})
		var seen []error
		c.opts.OnState = func(st State, err error) {
			if err != nil {
				seen = append(seen, err)
			}
		}
		data, err := collect(t.Context(), c)
		if err != nil || strings.Join(data, ",") != "a,b" {
			t.Fatalf("got %q, %v", data, err)
		}
		if len(seen) != 2 || !errors.Is(seen[0], broken) || !errors.Is(seen[1], io.EOF) {
			t.Errorf("OnState errors %v, want the read error, then the end of the second stream", seen)
		}
		if got := s.reqs[1].Header.Get("Last-Event-ID"); got != "1" {
			t.Errorf("Last-Event-ID %q, want 1", got)
		}
	})
}

// failingBody makes the first answer's body fail with err after its chunks.
type failingBody struct {
	*script
	err error
}

func (f *failingBody) RoundTrip(req *http.Request) (*http.Response, error) {
	first := len(f.reqs) == 0
	resp, err := f.script.RoundTrip(req)
	if err == nil && first {
		resp.Body = io.NopCloser(io.MultiReader(resp.Body, errReader{f.err}))
	}
	return resp, err
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestEmptyConnectionsBackOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A server that accepts and at once closes, having said retry: 0:
		// the client must not hammer it.
		s := &script{steps: []step{sseOK("retry: 0\n\n"), sseOK(": hi\n\n"), sseOK(""), sseOK("data: a\n\n"), sseOK("")}}
		c := New("http://herald.test/", &Options{HTTPClient: &http.Client{Transport: s}})
		if data, err := collect(t.Context(), c); err != nil || strings.Join(data, ",") != "a" {
			t.Fatalf("got %q, %v", data, err)
		}
		want := []time.Duration{minBackoff, 2 * minBackoff, 4 * minBackoff, 0, minBackoff}
		gaps := s.gaps()
		if len(gaps) != len(want) {
			t.Fatalf("gaps %v, want %v", gaps, want)
		}
		for i := range want {
			within(t, fmt.Sprintf("reconnection %d", i+1), gaps[i], want[i])
		}
	})
}

func TestIdleTimeoutExcludesCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []step{
			{status: 200, header: map[string]string{"Content-Type": "text/event-stream"}, body: []string{"data: a\n\n", "data: b\n\n"}, hang: true},
		}}
		c := New("http://herald.test/", &Options{HTTPClient: &http.Client{Transport: s}, IdleTimeout: 30 * time.Second})
		var data []string
		for ev, err := range c.Events(t.Context()) {
			if err != nil {
				t.Fatal(err)
			}
			data = append(data, ev.Data)
			time.Sleep(time.Minute) // a slow caller, longer than the idle timeout
		}
		if strings.Join(data, ",") != "a,b" || len(s.reqs) != 2 {
			t.Errorf("events %q over %d requests; want a,b over 2 (the stream, then 204)", data, len(s.reqs))
		}
	})
}

func TestNotHTTP(t *testing.T) {
	for _, url := range []string{"ftp://herald.test/", "localhost:8080/events", "/events", "http://"} {
		s := &script{}
		c := New(url, &Options{HTTPClient: &http.Client{Transport: s}})
		_, err := collect(t.Context(), c)
		if err == nil || !strings.Contains(err.Error(), "not an http or https URL") || len(s.reqs) != 0 {
			t.Errorf("%q: err = %v after %d requests; want a permanent error at once", url, err, len(s.reqs))
		}
	}
}

// NoDelay reconnects at once after a connection that delivered events;
// failed attempts still back off, and a retry field still rules. The zero
// value keeps the default delay.
func TestNoDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Each step's comment is the wait before its request.
		s := &script{steps: []step{
			sseOK("data: a\n\n"),
			sseOK("data: b\n\n"),               // none
			{status: 503},                      // none: the last connection delivered
			{status: 503},                      // 100 ms: failures back off from minBackoff
			sseOK("data: c\n\n"),               // 200 ms
			sseOK("retry: 300\n\ndata: d\n\n"), // none
			sseOK("data: e\n\n"),               // the server's 300 ms (and so the final 204)
		}}
		c := New("http://herald.test/", &Options{HTTPClient: &http.Client{Transport: s}, InitialDelay: NoDelay})
		data, err := collect(t.Context(), c)
		if err != nil || strings.Join(data, ",") != "a,b,c,d,e" {
			t.Fatalf("got %q, %v", data, err)
		}
		gaps := s.gaps()
		want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond, 0, 300 * time.Millisecond, 300 * time.Millisecond}
		if len(gaps) != len(want) {
			t.Fatalf("%d reconnections, want %d: %v", len(gaps), len(want), gaps)
		}
		for i := range want {
			within(t, fmt.Sprintf("reconnection %d", i+1), gaps[i], want[i])
		}
	})
	synctest.Test(t, func(t *testing.T) {
		s := &script{steps: []step{sseOK("data: a\n\n")}}
		c := New("http://herald.test/", &Options{HTTPClient: &http.Client{Transport: s}})
		if _, err := collect(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		within(t, "zero InitialDelay", s.gaps()[0], DefaultInitialDelay)
	})
}
