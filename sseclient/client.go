package sseclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"math/rand/v2"
	"mime"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/sse"
)

// Defaults of Options.
const (
	// DefaultInitialDelay is the reconnection time before a server sets one
	// with a retry field (browsers use a few seconds too).
	DefaultInitialDelay = 3 * time.Second
	// DefaultMaxDelay caps the exponential backoff.
	DefaultMaxDelay = 30 * time.Second
)

// NoDelay, as Options.InitialDelay, makes the client reconnect at once
// after a connection that delivered events, until the server sets a
// reconnection time with a retry field.
const NoDelay time.Duration = -1

// BodyBytes returns an Options.Body that sends a copy of b, with its
// Content-Length, on every connection.
func BodyBytes(b []byte) func() (io.Reader, error) {
	b = bytes.Clone(b)
	return func() (io.Reader, error) { return bytes.NewReader(b), nil }
}

// minBackoff is the least a failed attempt waits before the next, so that a
// server that asked for "retry: 0" is not hammered while it is down.
const minBackoff = 100 * time.Millisecond

// Options configure a Client. A nil *Options means all defaults; New copies
// the options and never modifies them.
type Options struct {
	// HTTPClient sends the requests. Default http.DefaultClient. Its Timeout
	// should be zero: it would cut every stream off after that time (use
	// IdleTimeout to detect dead connections instead).
	HTTPClient *http.Client

	// Method is the HTTP method of every request. Default GET, or POST when
	// Body is set. Streams served in answer to a POST (OpenAI-style
	// "stream": true completions) need POST and a Body.
	Method string

	// Body, if set, gives the body of a request: it is called once for each
	// connection attempt (and again if a 307 or 308 redirect must send the
	// body on), so that every reconnection sends the whole body again. A
	// *bytes.Reader, *bytes.Buffer or *strings.Reader is sent with its
	// Content-Length, any other reader in chunks; a reader that is also an
	// io.Closer is closed once sent. An error stops the client: Events
	// yields it. BodyBytes gives a Body for a fixed body. Default none.
	Body func() (io.Reader, error)

	// Header holds extra request headers, such as Authorization or a
	// Body's Content-Type, sent with every request. The client sets Accept,
	// Cache-Control and Last-Event-ID itself. Default none.
	Header http.Header

	// PrepareRequest, if set, is called with each request just before it is
	// sent, with every header set: it may change headers from one
	// connection to the next (fresh credentials in place of ones that
	// expire, a per-attempt trace id). An error stops the client: Events
	// yields it. It is called from the goroutine ranging over Events.
	PrepareRequest func(req *http.Request) error

	// LastEventID is sent as the Last-Event-ID header of the first request,
	// to resume a stream that an earlier Client read. Default empty: start
	// at the live end of the stream.
	LastEventID string

	// InitialDelay is the reconnection time until the server sets one with
	// a retry field. Zero means DefaultInitialDelay; NoDelay (any negative
	// value) means none: after a connection that delivered events the
	// client reconnects at once (failed attempts still back off, from
	// 100 ms).
	InitialDelay time.Duration

	// MaxDelay caps the backoff between failed attempts. A longer retry
	// field or Retry-After header from the server is still honoured.
	// Default DefaultMaxDelay.
	MaxDelay time.Duration

	// IdleTimeout, if positive, ends a connection on which nothing arrived
	// (not even a comment) for that long, and reconnects. Set it to a few
	// times the server's keep-alive interval (Herald's is 15 s by default).
	// Default zero: wait forever, as an EventSource does.
	IdleTimeout time.Duration

	// MaxEventSize limits one line and one event's data, in bytes. A larger
	// event stops the client with an error wrapping sse.ErrTooLarge.
	// Default sse.DefaultMaxEventSize.
	MaxEventSize int

	// OnComment, if set, is called with the text of every comment line the
	// server sends (a line that starts with a colon, such as a keep-alive:
	// what follows the colon, less one leading space), in order with the
	// events. Comments are not events, and EventSource never shows them;
	// this is for callers who want them, e.g. to log a server's notes.
	// It is called from the goroutine ranging over Events and must not
	// block for long. Default nil: comments are skipped.
	OnComment func(text string)

	// OnState, if set, is called with every change of state and with every
	// failed attempt: (Connecting, nil) before the first request,
	// (Connecting, err) when a connection ends or an attempt fails, with why,
	// (Open, nil) when the server accepted the stream, and (Closed, err) when
	// the client stops, with the error Events yields last (nil after 204 No
	// Content or when the caller stopped ranging). It is called from the
	// goroutine ranging over Events and must not block for long; it may
	// cancel the context passed to Events, e.g. to give up.
	OnState func(state State, err error)
}

// State is the state of a Client, as an EventSource's readyState.
type State int32

const (
	// Connecting: the client is connecting, or waiting to reconnect.
	Connecting State = iota
	// Open: the server accepted the stream and events flow.
	Open
	// Closed: the client is not running (before Events, or after it ends).
	Closed
)

func (s State) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Open:
		return "open"
	case Closed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// ErrBusy is yielded by Events when another iteration of the same Client is
// running.
var ErrBusy = errors.New("sseclient: Events is already running for this client")

// errDone ends the loop after a 204 No Content; errStopped after the caller
// stopped ranging.
var (
	errDone    = errors.New("sseclient: done")
	errStopped = errors.New("sseclient: stopped")
)

// Client reads one event stream and reconnects to it. Create it with New.
//
// All methods may be called concurrently, except that Events runs one
// iteration at a time: a call made while another iteration is running
// yields ErrBusy. Once an iteration ended, Events may be called again and
// resumes from LastEventID.
type Client struct {
	url  string
	opts Options

	running atomic.Bool
	state   atomic.Int32
	retry   atomic.Int64 // the server's reconnection time; -1 until it sets one

	mu     sync.Mutex
	lastID string
}

// New returns a Client for the stream at url. It does no I/O: a URL that
// cannot be requested is reported by Events.
func New(url string, opts *Options) *Client {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	o.Header = o.Header.Clone()
	if o.Method == "" {
		o.Method = http.MethodGet
		if o.Body != nil {
			o.Method = http.MethodPost
		}
	}
	if o.InitialDelay == 0 {
		o.InitialDelay = DefaultInitialDelay
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	c := &Client{url: url, opts: o, lastID: o.LastEventID}
	c.state.Store(int32(Closed))
	c.retry.Store(-1)
	return c
}

// URL returns the stream's URL.
func (c *Client) URL() string { return c.url }

// State returns the client's current state.
func (c *Client) State() State { return State(c.state.Load()) }

// LastEventID returns the last event id the client has seen: the id of the
// latest event Events yielded, or a later one the server sent in a block of
// its own. It is what the client sends as Last-Event-ID when it reconnects.
func (c *Client) LastEventID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastID
}

func (c *Client) setLastID(id string) {
	c.mu.Lock()
	c.lastID = id
	c.mu.Unlock()
}

// Events returns an iterator over the events of the stream. It connects,
// yields each dispatched event (whatever its type, comments excluded), and
// reconnects when the connection ends, until one of these ends it:
//
//   - the server answers 204 No Content: the iteration ends without an error;
//   - ctx ends: it yields ctx.Err();
//   - the server answers with a status that is not retried (4xx other than
//     408 and 429, or any other than 200, 204, 408, 429 and 5xx): it yields
//     a *StatusError;
//   - a 200 answer is not text/event-stream, an event is over MaxEventSize
//     (an error wrapping sse.ErrTooLarge), or the request cannot be built;
//   - the caller stops ranging.
//
// An error is yielded only as the last pair; transient failures are retried
// and reported to Options.OnState, not yielded.
func (c *Client) Events(ctx context.Context) iter.Seq2[sse.Event, error] {
	return func(yield func(sse.Event, error) bool) {
		if !c.running.CompareAndSwap(false, true) {
			yield(sse.Event{}, ErrBusy)
			return
		}
		defer c.running.Store(false)
		err := c.run(ctx, yield)
		switch {
		case errors.Is(err, errStopped), errors.Is(err, errDone):
			c.setState(Closed, nil)
		default:
			c.setState(Closed, err)
			yield(sse.Event{}, err)
		}
	}
}

func (c *Client) setState(s State, err error) {
	c.state.Store(int32(s))
	if c.opts.OnState != nil {
		c.opts.OnState(s, err)
	}
}

// run connects and reconnects until the stream ends for good. It returns
// errDone after a 204, errStopped when yield returned false, and otherwise
// the error that stopped it.
func (c *Client) run(ctx context.Context, yield func(sse.Event, error) bool) error {
	var (
		failures int   // attempts that failed since the last one that delivered an event
		cause    error // why the previous connection or attempt ended
		wait     time.Duration
	)
	for {
		c.setState(Connecting, cause)
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		delivered, err := c.connect(ctx, yield)
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, errStopped) {
			return ctxErr
		}
		if !retryable(err) {
			return err
		}
		// A connection that delivered nothing counts as a failure, so
		// that a server that accepts and at once closes is not hammered.
		if delivered {
			failures = 0
		} else {
			failures++
		}
		cause = err
		wait = c.delay(failures, err)
	}
}

// retryable reports whether the client reconnects after err.
func retryable(err error) bool {
	var se *StatusError
	switch {
	case errors.Is(err, errDone), errors.Is(err, errStopped), errors.Is(err, sse.ErrTooLarge), errors.Is(err, errPermanent):
		return false
	case errors.As(err, &se):
		return se.Temporary()
	}
	return true
}

// errPermanent marks errors after which reconnecting cannot help.
var errPermanent = errors.New("sseclient: permanent error")

type permanentError struct{ err error }

func (e *permanentError) Error() string       { return e.err.Error() }
func (e *permanentError) Unwrap() []error     { return []error{e.err, errPermanent} }
func permanent(format string, a ...any) error { return &permanentError{fmt.Errorf(format, a...)} }

// delay returns how long to wait before the next attempt, given how many
// attempts failed since the last that delivered an event: the reconnection time,
// doubled for each failed attempt after the first and capped at MaxDelay
// (or the reconnection time, if longer); at least a 429 or 503 answer's
// Retry-After; plus a random jitter of up to half of that.
func (c *Client) delay(failures int, err error) time.Duration {
	base := max(c.opts.InitialDelay, 0) // NoDelay: none
	if r := c.retry.Load(); r >= 0 {
		base = time.Duration(r)
	}
	d := base
	if failures > 0 {
		d = max(base, minBackoff)
		limit := max(c.opts.MaxDelay, base)
		for i := 1; i < failures && d < limit; i++ {
			d *= 2
		}
		d = min(d, limit)
	}
	var se *StatusError
	if errors.As(err, &se) && se.RetryAfter > d {
		d = se.RetryAfter
	}
	if d > 0 {
		// Saturating: a huge retry field (the decoder clamps it to the
		// longest duration) must not wrap around to no wait at all.
		if j := rand.N(d/2 + 1); d <= math.MaxInt64-j {
			d += j
		} else {
			d = math.MaxInt64
		}
	}
	return d
}

// request builds the request of one connection attempt, resuming after
// lastID.
func (c *Client) request(ctx context.Context, lastID string) (req *http.Request, err error) {
	var body io.Reader
	if c.opts.Body != nil {
		if body, err = c.opts.Body(); err != nil {
			return nil, permanent("sseclient: request body: %w", err)
		}
		defer func() {
			// Sent, the body is the transport's to close; not sent, ours.
			if cl, ok := body.(io.Closer); ok && err != nil {
				cl.Close()
			}
		}()
	}
	req, err = http.NewRequestWithContext(ctx, c.opts.Method, c.url, body)
	if err != nil {
		return nil, permanent("sseclient: %w", err)
	}
	if (req.URL.Scheme != "http" && req.URL.Scheme != "https") || req.URL.Host == "" {
		return nil, permanent("sseclient: %q is not an http or https URL", c.url)
	}
	if body != nil && req.GetBody == nil {
		// A redirect that keeps the body asks for it again.
		req.GetBody = func() (io.ReadCloser, error) {
			b, err := c.opts.Body()
			if err != nil {
				return nil, err
			}
			if rc, ok := b.(io.ReadCloser); ok {
				return rc, nil
			}
			return io.NopCloser(b), nil
		}
	}
	for k, v := range c.opts.Header {
		req.Header[k] = append([]string(nil), v...)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	if c.opts.PrepareRequest != nil {
		if err := c.opts.PrepareRequest(req); err != nil {
			return nil, permanent("sseclient: PrepareRequest: %w", err)
		}
	}
	return req, nil
}

// connect makes one request and yields the events of its stream. delivered
// reports whether it yielded at least one event.
func (c *Client) connect(ctx context.Context, yield func(sse.Event, error) bool) (delivered bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lastID := c.LastEventID()
	req, err := c.request(ctx, lastID)
	if err != nil {
		return false, err
	}

	var idle *idleReader
	if d := c.opts.IdleTimeout; d > 0 {
		idle = &idleReader{d: d, t: time.AfterFunc(d, func() { cancel(errIdle) })}
		defer idle.t.Stop()
	}
	resp, err := c.opts.HTTPClient.Do(req)
	if err != nil {
		if errors.Is(context.Cause(ctx), errIdle) {
			return false, fmt.Errorf("%w: no answer within %v", errIdle, c.opts.IdleTimeout)
		}
		return false, fmt.Errorf("sseclient: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNoContent:
		return false, errDone
	case resp.StatusCode != http.StatusOK:
		return false, newStatusError(resp)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return false, permanent("sseclient: %s answered with Content-Type %q, not text/event-stream", c.url, resp.Header.Get("Content-Type"))
	}
	c.setState(Open, nil)

	var body io.Reader = resp.Body
	if idle != nil {
		idle.t.Reset(idle.d)
		idle.r = resp.Body
		body = idle
	}
	dec := sse.NewDecoder(body)
	dec.MaxEventSize = c.opts.MaxEventSize
	dec.OnComment = c.opts.OnComment
	dec.SetLastEventID(lastID)
	for {
		ev, err := dec.Next()
		if id := dec.LastEventID(); id != lastID {
			lastID = id
			c.setLastID(id)
		}
		if dec.HasRetry() {
			c.retry.Store(int64(dec.Retry()))
		}
		if err != nil {
			switch {
			case errors.Is(context.Cause(ctx), errIdle):
				return delivered, fmt.Errorf("%w: nothing received for %v", errIdle, c.opts.IdleTimeout)
			case errors.Is(err, io.EOF):
				return delivered, errEnded
			case errors.Is(err, sse.ErrTooLarge):
				return delivered, fmt.Errorf("sseclient: %w", err)
			}
			return delivered, fmt.Errorf("sseclient: reading the stream: %w", err)
		}
		delivered = true
		// The time the caller takes over an event is not idle time.
		if idle != nil {
			idle.t.Stop()
		}
		if !yield(ev, nil) {
			return true, errStopped
		}
		if idle != nil {
			idle.t.Reset(idle.d)
		}
	}
}

var (
	errIdle  = errors.New("sseclient: idle timeout")
	errEnded = fmt.Errorf("sseclient: the server ended the stream: %w", io.EOF)
)

// idleReader restarts the idle timer whenever bytes arrive.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.Reset(r.d)
	}
	return n, err
}
