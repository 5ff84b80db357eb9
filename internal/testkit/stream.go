package testkit

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/heraldpush/herald/sse"
)

// Stream is a text/event-stream read by a goroutine of its own, block by
// block (see BlockReader), as fast as the server writes it: a test that
// reads slowly does not make the server see a slow client. Its methods
// wait at most Timeout for what they return; they are for one goroutine
// (the test's) at a time.
type Stream struct {
	Resp   *http.Response
	blocks chan Block
	done   chan error // receives once, after blocks is closed: nil at a clean end
	end    error      // what done gave, once it has
	ended  bool
	cancel context.CancelFunc
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

// LastEventID returns a header with Last-Event-ID id, or nil when id is
// empty: what an EventSource sends when it reconnects.
func LastEventID(id string) http.Header {
	if id == "" {
		return nil
	}
	return http.Header{"Last-Event-Id": {id}}
}

// NewStream reads resp's body as a text/event-stream; cancel (may be nil)
// ends the request when the stream is closed, which happens when t ends.
func NewStream(t testing.TB, resp *http.Response, cancel context.CancelFunc) *Stream {
	s := &Stream{Resp: resp, cancel: cancel, blocks: make(chan Block, 4096), done: make(chan error, 1)}
	go func() {
		r := NewBlockReader(resp.Body)
		for {
			b, err := r.Next()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				close(s.blocks)
				s.done <- err
				return
			}
			s.blocks <- b
		}
	}()
	t.Cleanup(s.Close)
	return s
}

// NextBlockWithin returns the next block, io.EOF once the stream has
// ended cleanly, the read error that ended it otherwise, or an error if
// none comes within d.
func (s *Stream) NextBlockWithin(d time.Duration) (Block, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case b, ok := <-s.blocks:
		if ok {
			return b, nil
		}
		if err := s.result(); err != nil {
			return Block{}, err
		}
		return Block{}, io.EOF
	case <-timer.C:
		return Block{}, errTimeout{d}
	}
}

// NextBlock returns the next block (comments, retry hints and id-only
// position markers included), or false once the stream has ended; it
// fails t if none comes within Timeout.
func (s *Stream) NextBlock(t testing.TB) (Block, bool) {
	t.Helper()
	b, err := s.NextBlockWithin(Timeout)
	switch {
	case err == nil:
		return b, true
	case errors.Is(err, ErrTimeout):
		t.Fatalf("reading the stream: %v", err)
	}
	return Block{}, false
}

// NextWithin returns the next event (a block that carries data, as an
// EventSource dispatches it), or io.EOF once the stream has ended, or an
// error if none comes within d.
func (s *Stream) NextWithin(d time.Duration) (sse.Event, error) {
	deadline := time.Now().Add(d)
	for {
		b, err := s.NextBlockWithin(time.Until(deadline))
		if err != nil {
			return sse.Event{}, err
		}
		if b.HasData {
			return b.Event(), nil
		}
	}
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

// NextID returns the next block that carries an id field (an event or an
// id-only position marker), failing t if none comes within Timeout or the
// stream ends. A test waits on it for a subscription to be in place.
func (s *Stream) NextID(t testing.TB) Block {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		b, err := s.NextBlockWithin(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for an id: %v", err)
		}
		if b.HasID {
			return b
		}
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

// UntilData reads events until one whose data is data (a test's marker),
// and returns the events before it.
func (s *Stream) UntilData(t testing.TB, data string) []sse.Event {
	t.Helper()
	_, before := s.Until(t, func(ev sse.Event) bool { return ev.Data == data })
	return before
}

// Data reads n events and returns their data.
func (s *Stream) Data(t testing.TB, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for len(out) < n {
		out = append(out, s.Next(t).Data)
	}
	return out
}

// End reads until the stream ends and returns the blocks read and how it
// ended (nil: cleanly, at the end of the body), failing t if it does not
// end within Timeout.
func (s *Stream) End(t testing.TB) ([]Block, error) {
	t.Helper()
	return s.EndWithin(t, Timeout)
}

// EndWithin is End with a timeout of d.
func (s *Stream) EndWithin(t testing.TB, d time.Duration) ([]Block, error) {
	t.Helper()
	var rest []Block
	deadline := time.Now().Add(d)
	for {
		b, err := s.NextBlockWithin(time.Until(deadline))
		switch {
		case err == nil:
			rest = append(rest, b)
			continue
		case errors.Is(err, io.EOF):
			return rest, nil
		case errors.Is(err, ErrTimeout):
			t.Fatalf("waiting for the stream to end (got %v): %v", rest, err)
		}
		return rest, err
	}
}

// result returns how the stream ended (nil: cleanly), once blocks is
// closed: the reader sends it right after.
func (s *Stream) result() error {
	if !s.ended {
		s.end, s.ended = <-s.done, true
	}
	return s.end
}

// Close ends the request and the reader, and waits for the reader. It is
// idempotent.
func (s *Stream) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.Resp.Body.Close()
	for range s.blocks {
	}
	s.result()
}

// ErrTimeout is what a read that waited in vain returns (errors.Is).
var ErrTimeout = errors.New("testkit: nothing came in time")

type errTimeout struct{ d time.Duration }

func (e errTimeout) Error() string        { return "nothing within " + e.d.String() }
func (e errTimeout) Is(target error) bool { return target == ErrTimeout }
