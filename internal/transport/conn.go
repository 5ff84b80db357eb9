package transport

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/heraldpush/herald/internal/hub"
)

// Connection states: who owns a Conn.
const (
	stBusy   = iota // a worker, a flushing goroutine or the setup owns it
	stIdle          // nobody: a wake queues it
	stQueued        // on the ready queue
	stDone          // torn down
)

// Conn is one stream served by an Engine: a hijacked connection, its
// protocol and, once subscribed, its subscription. It holds no goroutine,
// buffer or timer while idle.
//
// A Conn is owned by one goroutine at a time (a worker, the goroutine that
// finishes a blocked write, or the setup): the owner alone calls its
// Protocol's Turn and touches the fields marked "owner". Wake, and the
// flags it schedules, may be called from anywhere.
type Conn struct {
	e     *Engine
	id    uint64
	nc    net.Conn        // the hijacked connection; nil on the standard path
	raw   syscall.RawConn // its socket, for non-blocking I/O; nil: blocking I/O in goroutines
	proto Protocol
	end   func(int64) // ends the request for the middleware (reqlife), or nil

	sub     atomic.Pointer[hub.Subscription]
	expires atomic.Int64 // clock() when the credentials expire; 0: never
	timer   atomic.Int64 // clock() of the protocol's deadline (SetTimer); 0: none

	mu    sync.Mutex // guards state and dirty
	state uint8
	dirty bool // woken while busy

	closed    atomic.Bool
	gone      atomic.Bool   // the peer closed or reset the connection
	kaDue     atomic.Bool   // a keep-alive is due
	expDue    atomic.Bool   // the credentials expired
	timerDue  atomic.Bool   // the protocol's deadline passed
	readDue   atomic.Bool   // the client sent something
	shutDue   atomic.Bool   // the engine is shutting down
	paused    atomic.Bool   // reading is paused (PauseRead)
	reads     bool          // the engine watches the socket for reading (ConnOptions.Read)
	lastWrite atomic.Int64  // wheel tick of the last write
	wroteAt   atomic.Int64  // clock() at the last write
	wheelGen  atomic.Uint32 // the wheel entry that counts (see wheel)

	input inbox // bytes read by a goroutine (blocking I/O), for Read

	// Owner.
	wrote   uint64 // events written
	bytes   int64  // body bytes written (without transport framing)
	aborted bool   // the stream was cut without a clean end
}

// Due says what a turn is for, besides the events queued.
type Due uint8

// What may be due.
const (
	DueKeepAlive Due = 1 << iota // nothing was written for the keep-alive interval
	DueExpired                   // the subscriber's credentials expired
	DueTimer                     // the protocol's deadline (SetTimer) passed
	DueRead                      // the client sent something (Read it)
	DueShutdown                  // the engine is shutting down
)

// Next tells the engine how a connection goes on after a turn's writes.
type Next uint8

// What a turn may decide.
const (
	Continue Next = iota // keep serving
	End                  // close the connection once the turn's bytes are written
	Abort                // close the connection without writing the turn's bytes
)

// Protocol is a transport's side of a connection: what to write when. The
// engine calls Turn on the connection's owner when something is due (see
// Due) or events are queued; Turn appends what to write to b (Pump does
// the events) and says how the connection goes on. Closed runs once when
// the connection is torn down.
type Protocol interface {
	Turn(c *Conn, b *Batch, due Due) Next
	Closed(c *Conn)
}

// Sub returns the connection's subscription, or nil before it has one.
func (c *Conn) Sub() *hub.Subscription { return c.sub.Load() }

// Attach makes sub the connection's subscription (a WebSocket connection
// made with resume=frame subscribes after it is served). The connection
// then owns sub and closes it at the end. Call it at most once, on the
// owner or before the connection is served.
func (c *Conn) Attach(sub *hub.Subscription) {
	c.sub.Store(sub)
	sub.Notify(c.Wake)
	c.Wake() // events may be queued already
}

// SetTimer makes the protocol's deadline t (zero: none): a turn with
// DueTimer follows when it passes (within one tick of the engine's wheel).
func (c *Conn) SetTimer(t time.Time) {
	if t.IsZero() {
		c.timer.Store(0)
		return
	}
	c.timer.Store(clockAt(t))
	if c.e != nil {
		c.e.wheel.reschedule(c)
	}
}

// Wake schedules a turn: events are queued, the subscription ended, or
// something is due. It never blocks; it is the subscription's Notify
// callback.
func (c *Conn) Wake() {
	c.mu.Lock()
	switch c.state {
	case stIdle:
		c.state = stQueued
		c.mu.Unlock()
		if clock()-c.wroteAt.Load() < int64(coalesceWindow) {
			c.e.co.later(c)
		} else {
			c.e.pool.enqueue(c)
		}
		return
	case stBusy:
		c.dirty = true
	}
	c.mu.Unlock()
}

// peerGone is called when the peer closed or reset the connection.
func (c *Conn) peerGone() {
	c.gone.Store(true)
	c.Wake()
}

// readable is called when the client sent something.
func (c *Conn) readable() {
	c.readDue.Store(true)
	c.Wake()
}

// take makes the caller (a worker) the owner of a queued connection.
func (c *Conn) take() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stQueued {
		return false
	}
	c.state, c.dirty = stBusy, false
	return true
}

// release gives up ownership; a wake received meanwhile queues c again.
func (c *Conn) release() {
	c.mu.Lock()
	switch {
	case c.state != stBusy:
		c.mu.Unlock()
	case c.dirty:
		c.state, c.dirty = stQueued, false
		c.mu.Unlock()
		c.e.pool.enqueue(c)
	default:
		c.state = stIdle
		c.mu.Unlock()
	}
}

// teardown ends the stream: it closes the subscription and the connection
// and settles the accounting. Only the owner calls it; it is idempotent.
func (c *Conn) teardown() {
	c.mu.Lock()
	if c.state == stDone {
		c.mu.Unlock()
		return
	}
	c.state = stDone
	c.mu.Unlock()
	c.closed.Store(true)
	if sub := c.Sub(); sub != nil {
		sub.Close()
	}
	_ = c.nc.Close()
	c.input.shut()
	c.proto.Closed(c)
	c.e.remove(c)
	c.e.settle(c)
	if c.end != nil {
		c.end(c.bytes)
	}
}

// due collects and clears what is due.
func (c *Conn) due() Due {
	var d Due
	if exp := c.expires.Load(); exp != 0 && clock() >= exp {
		c.expDue.Store(true) // exact, whenever the wheel's tick comes
	}
	if c.kaDue.Swap(false) {
		d |= DueKeepAlive
	}
	if c.expDue.Load() {
		d |= DueExpired // stays set: the stream ends
	}
	if c.timerDue.Swap(false) {
		d |= DueTimer
	}
	if c.readDue.Swap(false) {
		d |= DueRead
	}
	if c.shutDue.Load() {
		d |= DueShutdown
	}
	return d
}

// flush writes parts with the write deadline, blocking, in a goroutine of
// its own (the socket buffer was full, or the connection has no raw
// socket), then gives the connection back to the pool, or ends it.
func (c *Conn) flush(parts [][]byte, payload int, ending bool) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.e.writeTimeout))
	var err error
	for _, p := range parts {
		if _, err = c.nc.Write(p); err != nil {
			break
		}
	}
	_ = c.nc.SetWriteDeadline(time.Time{})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if sub := c.Sub(); sub != nil {
			sub.EndSlow() // the client did not take the write in time
		}
	}
	if err != nil || ending {
		if err == nil {
			c.bytes += int64(payload)
		}
		c.teardown()
		return
	}
	c.wrote1(payload)
	c.release()
}

// wrote1 records a completed write.
func (c *Conn) wrote1(payload int) {
	c.bytes += int64(payload)
	c.lastWrite.Store(c.e.wheel.now.Load())
	c.wroteAt.Store(clock())
}
