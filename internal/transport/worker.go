package transport

import "slices"

// worker holds a worker goroutine's scratch space; workers are reused.
type worker struct {
	e     *Engine
	conns []*Conn
	batch Batch
	io    rawIO // the state of one non-blocking write (io_unix.go)
}

func newWorker(e *Engine) *worker {
	w := &worker{e: e}
	w.io.init()
	return w
}

// serve gives one owned connection its turn and writes what the turn
// produced. It reports whether it handed the connection on (to a goroutine
// finishing the write) or tore it down; otherwise the caller releases it.
func (w *worker) serve(c *Conn) (handedOn bool) {
	if c.gone.Load() {
		c.teardown()
		return true
	}
	due := c.due()
	b := &w.batch
	next := c.proto.Turn(c, b, due)
	if due&DueRead != 0 && next == Continue {
		c.rearm()
	}
	if next == Abort {
		b.reset(false)
		c.aborted = true
		c.teardown()
		return true
	}
	ending := next == End
	if b.Empty() {
		if ending {
			c.teardown()
			return true
		}
		return false
	}
	payload := b.payload
	total := b.Len()
	n, err := 0, error(nil)
	if c.raw != nil {
		n, err = w.io.write(c.raw, b.parts)
	}
	switch {
	case err != nil:
		b.reset(false)
		c.teardown()
		return true
	case n < total:
		// The socket buffer is full (or the connection has no raw
		// socket): the rest is written with a deadline by a goroutine
		// of the connection's own. It keeps references to the shared
		// event bytes, not a copy: a thousand stalled subscribers must
		// not hold a thousand copies.
		rest := make([][]byte, 0, len(b.parts))
		for _, p := range b.parts {
			if n >= len(p) {
				n -= len(p)
				continue
			}
			rest = append(rest, p[n:])
			n = 0
		}
		b.reset(true) // the scratch bytes go with rest
		go c.flush(slices.Clip(rest), payload, ending)
		return true
	case ending:
		c.bytes += int64(payload)
		b.reset(false)
		c.teardown()
		return true
	}
	c.wrote1(payload)
	b.reset(false)
	return false
}
