package testkit

import (
	"context"
	"io"
	"iter"
	"net/http"
	"testing"
	"time"

	"github.com/heraldpush/herald/sse"
)

// Stream is a text/event-stream read with the public decoder (sse.Read),
// event by event, each read bounded by a timeout.
type Stream struct {
	Resp   *http.Response
	next   func() (sse.Event, error, bool)
	stop   func()
	cancel context.CancelFunc
	events chan result
}

type result struct {
	ev  sse.Event
	err error
	ok  bool
}

// Subscribe GETs url with hdr (may be nil) on c (nil: http.DefaultClient)
// and fails t unless the answer is 200. The stream is closed when the test
// ends.
func Subscribe(t testing.TB, c *http.Client, url string, hdr http.Header) *Stream {
	t.Helper()
	resp, cancel := Get(t, c, url, hdr)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return NewStream(t, resp, cancel)
}

// Get sends a GET of url with hdr on c (nil: http.DefaultClient), with a
// context the returned function cancels, and returns the response whatever
// its status.
func Get(t testing.TB, c *http.Client, url string, hdr http.Header) (*http.Response, context.CancelFunc) {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, cancel
}

// NewStream reads resp's body as a text/event-stream; cancel (may be nil)
// ends the request when the stream is closed.
func NewStream(t testing.TB, resp *http.Response, cancel context.CancelFunc) *Stream {
	s := &Stream{Resp: resp, cancel: cancel, events: make(chan result)}
	next, stop := iter.Pull2(sse.Read(resp.Body))
	s.next, s.stop = next, stop
	t.Cleanup(s.Close)
	return s
}

// Next returns the next event, failing t if none comes within Timeout or
// the stream ends.
func (s *Stream) Next(t testing.TB) sse.Event {
	t.Helper()
	ev, err := s.NextWithin(Timeout)
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	return ev
}

// NextWithin returns the next event, or io.EOF once the stream has ended,
// or an error if none comes within d.
func (s *Stream) NextWithin(d time.Duration) (sse.Event, error) {
	go func() {
		ev, err, ok := s.next()
		s.events <- result{ev, err, ok}
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-s.events:
		switch {
		case !r.ok:
			return sse.Event{}, io.EOF
		case r.err != nil:
			return sse.Event{}, r.err
		}
		return r.ev, nil
	case <-timer.C:
		// The reader stays blocked until the request ends.
		s.closeBody()
		<-s.events
		return sse.Event{}, errTimeout{d}
	}
}

// Until reads events until one satisfies match, and returns it with the
// events before it.
func (s *Stream) Until(t testing.TB, match func(sse.Event) bool) (sse.Event, []sse.Event) {
	t.Helper()
	var before []sse.Event
	for {
		ev := s.Next(t)
		if match(ev) {
			return ev, before
		}
		before = append(before, ev)
	}
}

// Data reads n events that carry data (skipping id-only events) and
// returns their data.
func (s *Stream) Data(t testing.TB, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		if ev := s.Next(t); ev.Data != "" || ev.Type != "" {
			out = append(out, ev.Data)
		}
	}
	return out
}

// End reads until the stream ends and returns the events read, failing t
// if it does not end within Timeout.
func (s *Stream) End(t testing.TB) []sse.Event {
	t.Helper()
	var evs []sse.Event
	for {
		ev, err := s.NextWithin(Timeout)
		if err == io.EOF {
			return evs
		}
		if err != nil {
			t.Fatalf("waiting for the stream to end: %v", err)
		}
		evs = append(evs, ev)
	}
}

// Close ends the request and the reader. It is idempotent; do not call it
// while Next runs.
func (s *Stream) Close() {
	s.closeBody()
	s.stop()
}

func (s *Stream) closeBody() {
	if s.cancel != nil {
		s.cancel()
	}
	s.Resp.Body.Close()
}

type errTimeout struct{ d time.Duration }

func (e errTimeout) Error() string { return "no event within " + e.d.String() }
