package transport

import (
	"sync"
)

// Reading what a client sends (the WebSocket transport): on Linux the
// engine's epoll set reports a readable socket (DueRead) and the turn reads
// it without blocking; a connection without a raw socket (TLS, or no epoll)
// has a goroutine blocked in a read that hands the bytes over through its
// inbox.

// Read reads what the client sent, without blocking: (0, nil) when there
// is nothing more now, io.EOF (or another error) when the connection is
// gone. Call it from Turn with DueRead, until it returns 0; the engine
// then watches the socket again (unless the protocol paused reading).
func (c *Conn) Read(p []byte) (int, error) {
	if n, err, ok := c.input.take(p); ok {
		return n, err
	}
	if c.raw == nil {
		return 0, nil
	}
	return readRaw(c.raw, p)
}

// PauseRead stops reading until ResumeRead: the client's data waits in the
// socket (and then in the client's), which stops a client that sends
// faster than the server handles it.
func (c *Conn) PauseRead() { c.paused.Store(true) }

// ResumeRead reads again after PauseRead: a turn with DueRead follows.
func (c *Conn) ResumeRead() {
	if c.paused.Swap(false) {
		c.readable()
	}
}

// rearm watches c's socket again after a turn that read it.
func (c *Conn) rearm() {
	if c.paused.Load() || c.closed.Load() {
		return
	}
	if c.raw == nil {
		// The reading goroutine goes on by itself; what it left in the
		// inbox is read on another turn.
		if c.input.pending() {
			c.readable()
		}
		return
	}
	c.e.mu.Lock()
	ok := c.e.watch.rearm(c)
	c.e.mu.Unlock()
	if !ok {
		c.readable() // watch by reading at once: the next turn reads
	}
}

// inboxMax is how much a reading goroutine buffers before it waits for
// the turns to take it.
const inboxMax = 64 << 10

// inbox holds what a reading goroutine read (and what the client sent
// with its request), until a turn takes it.
type inbox struct {
	mu     sync.Mutex // guards the fields below
	buf    []byte
	err    error         // the read error that ended the reading goroutine
	space  chan struct{} // non-nil while the reading goroutine waits for room
	closed bool
}

// push appends p; it returns a channel to wait on when the inbox is full,
// or nil.
func (in *inbox) push(p []byte) <-chan struct{} {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return nil
	}
	in.buf = append(in.buf, p...)
	if len(in.buf) < inboxMax {
		return nil
	}
	if in.space == nil {
		in.space = make(chan struct{})
	}
	return in.space
}

func (in *inbox) fail(err error) {
	in.mu.Lock()
	in.err = err
	in.mu.Unlock()
}

// take moves buffered bytes to p. ok is false when the inbox has nothing
// to say (no bytes, no error).
func (in *inbox) take(p []byte) (n int, err error, ok bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.buf) == 0 {
		if in.err != nil {
			return 0, in.err, true
		}
		return 0, nil, false
	}
	n = copy(p, in.buf)
	in.buf = in.buf[n:]
	if len(in.buf) == 0 {
		in.buf = nil
	}
	if in.space != nil && len(in.buf) < inboxMax {
		close(in.space)
		in.space = nil
	}
	return n, nil, true
}

// pending reports whether the inbox holds bytes.
func (in *inbox) pending() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.buf) > 0
}

// shut releases a reading goroutine that waits for room: the connection
// is torn down.
func (in *inbox) shut() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.closed = true
	in.buf = nil
	if in.space != nil {
		close(in.space)
		in.space = nil
	}
}

// watchByReading watches c with a goroutine blocked in a read, where the
// engine cannot use epoll (a TLS connection, another OS, epoll failing).
// For a one-way stream it only detects a dead peer: the client sends
// nothing after its request, so a read ends only when the peer closes or
// resets the connection, or when teardown closes it, and a client that
// keeps sending is not read beyond a few KiB (its writes then fail). For a
// connection with read (WebSocket), it hands what it reads to the turns.
func watchByReading(c *Conn, read bool) {
	if !read {
		var b [512]byte
		for n := 0; n < 8<<10; {
			m, err := c.nc.Read(b[:])
			n += m
			if err != nil {
				c.peerGone()
				return
			}
		}
		return
	}
	buf := make([]byte, 4<<10)
	for {
		n, err := c.nc.Read(buf)
		if n > 0 {
			if wait := c.input.push(buf[:n]); wait != nil {
				c.readable()
				<-wait
			}
			c.readable()
		}
		if err != nil {
			c.input.fail(err)
			c.readable()
			return
		}
	}
}

// Paused reports whether reading is paused (PauseRead).
func (c *Conn) Paused() bool { return c.paused.Load() }
