package transport

import (
	"sync"
	"sync/atomic"
	"time"
)

// wheel sends keep-alives and fires deadlines (credentials' expiry, a
// protocol's timer) with one ticker per engine instead of a ticker or timer
// per connection. A connection sits in the slot of the tick when its next
// keep-alive or deadline falls due; when the slot comes up, the connection
// is woken with what is due and moves to the slot of its next one.
// Keep-alives go out between one interval and one interval plus a tick
// (1/16 of the interval, at most 1 s) after the last write; deadlines fire
// within a tick (the turn itself checks the expiry exactly: no event goes
// out after it).
//
// A connection whose deadline moves gets a new entry (reschedule); its old
// entries are skipped by their generation.
type wheel struct {
	tick time.Duration
	span int64        // the keep-alive interval in ticks
	now  atomic.Int64 // ticks since the wheel was made

	mu    sync.Mutex // guards the fields below
	slots [][]wheelEntry
	pos   int
	count int
	stop  chan struct{} // non-nil while the ticker runs
}

type wheelEntry struct {
	c   *Conn
	gen uint32
}

func (w *wheel) init(interval time.Duration) {
	w.tick = min(max(interval/16, time.Millisecond), time.Second)
	w.span = int64((interval + w.tick - 1) / w.tick)
	w.slots = make([][]wheelEntry, w.span+1)
}

// add starts c's keep-alives and deadlines.
func (w *wheel) add(c *Conn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now.Load()
	c.lastWrite.Store(now)
	k, _ := w.next(c, now, false)
	w.put(c, c.wheelGen.Load(), k)
	w.count++
	if w.stop == nil {
		w.stop = make(chan struct{})
		go w.run(w.stop)
	}
}

// reschedule moves c to the slot of its next keep-alive or deadline (its
// deadline changed).
func (w *wheel) reschedule(c *Conn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stop == nil || c.closed.Load() {
		return
	}
	k, _ := w.next(c, w.now.Load(), false)
	w.put(c, c.wheelGen.Add(1), k)
}

func (w *wheel) remove() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.count--
	if w.count == 0 && w.stop != nil {
		close(w.stop)
		w.stop = nil
		clear(w.slots)
	}
}

// put places c in the slot k ticks ahead. w.mu is held.
func (w *wheel) put(c *Conn, gen uint32, k int64) {
	i := (w.pos + int(k)) % len(w.slots)
	w.slots[i] = append(w.slots[i], wheelEntry{c, gen})
}

// next returns the ticks until c's next keep-alive or deadline, from 1 to
// the span. With mark, it also marks what is due now on c and reports
// whether anything is.
func (w *wheel) next(c *Conn, now int64, mark bool) (k int64, due bool) {
	k = w.span - (now - c.lastWrite.Load())
	if k <= 0 {
		if mark {
			c.kaDue.Store(true)
			due = true
		}
		k = w.span
	}
	t := clock()
	if exp := c.expires.Load(); exp != 0 {
		if t >= exp {
			if mark {
				c.expDue.Store(true)
				due = true
			}
		} else {
			k = min(k, w.ticks(exp-t))
		}
	}
	if tm := c.timer.Load(); tm != 0 {
		if t >= tm {
			if mark && c.timer.CompareAndSwap(tm, 0) {
				c.timerDue.Store(true)
				due = true
			}
		} else {
			k = min(k, w.ticks(tm-t))
		}
	}
	return max(k, 1), due
}

// ticks returns d nanoseconds in ticks, rounded up.
func (w *wheel) ticks(d int64) int64 {
	return max(1, (d+int64(w.tick)-1)/int64(w.tick))
}

func (w *wheel) run(stop chan struct{}) {
	t := time.NewTicker(w.tick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			w.advance(stop)
		}
	}
}

func (w *wheel) advance(stop chan struct{}) {
	var wake []*Conn
	w.mu.Lock()
	if w.stop != stop {
		w.mu.Unlock()
		return
	}
	now := w.now.Add(1)
	w.pos = (w.pos + 1) % len(w.slots)
	slot := w.slots[w.pos]
	w.slots[w.pos] = nil
	for _, en := range slot {
		c := en.c
		if c.closed.Load() || en.gen != c.wheelGen.Load() {
			continue
		}
		k, due := w.next(c, now, true)
		if due {
			wake = append(wake, c)
		}
		w.put(c, en.gen, k)
	}
	w.mu.Unlock()
	for _, c := range wake {
		c.Wake()
	}
}
