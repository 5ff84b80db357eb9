package transport

import (
	"sync"
	"time"
)

// coalesceWindow is how long after a write a connection's next write
// waits, so that events arriving meanwhile share it: a busy topic's events
// go out several to a write instead of one syscall each, and an event
// after a quiet spell goes out at once.
const coalesceWindow = time.Millisecond

// coalescer holds the connections woken within their window, with one
// timer for all.
type coalescer struct {
	pool *pool

	mu    sync.Mutex // guards the fields below
	conns []*Conn
	timer *time.Timer // armed while conns is not empty
}

// later queues c when the window ends.
func (co *coalescer) later(c *Conn) {
	co.mu.Lock()
	co.conns = append(co.conns, c)
	if len(co.conns) == 1 {
		if co.timer == nil {
			co.timer = time.AfterFunc(coalesceWindow, co.flush)
		} else {
			co.timer.Reset(coalesceWindow)
		}
	}
	co.mu.Unlock()
}

// flush moves the connections that waited for their window to the ready
// queue.
func (co *coalescer) flush() {
	co.mu.Lock()
	cs := co.conns
	co.conns = nil
	co.mu.Unlock()
	if len(cs) == 0 {
		return
	}
	co.pool.enqueueAll(cs)
	clear(cs)
	co.mu.Lock()
	if co.conns == nil {
		co.conns = cs[:0]
	}
	co.mu.Unlock()
}
