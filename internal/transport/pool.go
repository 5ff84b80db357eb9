package transport

import "sync"

// pool is the ready queue and the workers that serve it: at most GOMAXPROCS
// short-lived goroutines, which exist only while connections are ready.
type pool struct {
	e          *Engine
	mu         sync.Mutex // guards the fields below
	queue      []*Conn
	head       int
	workers    int
	maxWorkers int
	free       []*worker
}

func (p *pool) init(e *Engine, maxWorkers int) {
	p.e, p.maxWorkers = e, maxWorkers
}

// grab is how many ready connections a worker takes at a time.
const grab = 64

// enqueue puts a queued connection on the ready queue and starts a worker
// if fewer than the maximum run.
func (p *pool) enqueue(c *Conn) {
	p.mu.Lock()
	p.queue = append(p.queue, c)
	spawn := p.workers < p.maxWorkers
	if spawn {
		p.workers++
	}
	p.mu.Unlock()
	if spawn {
		go p.work()
	}
}

// enqueueAll puts connections on the ready queue, with a worker for each
// grab of them, up to the maximum.
func (p *pool) enqueueAll(cs []*Conn) {
	p.mu.Lock()
	p.queue = append(p.queue, cs...)
	spawn := min(p.maxWorkers-p.workers, (len(cs)+grab-1)/grab)
	p.workers += spawn
	p.mu.Unlock()
	for range spawn {
		go p.work()
	}
}

// work serves ready connections until the queue is empty.
func (p *pool) work() {
	p.mu.Lock()
	var w *worker
	if n := len(p.free); n > 0 {
		w, p.free = p.free[n-1], p.free[:n-1]
	} else {
		w = newWorker(p.e)
	}
	for {
		if p.head == len(p.queue) {
			clear(p.queue)
			p.queue, p.head = p.queue[:0], 0
			p.workers--
			p.free = append(p.free, w)
			p.mu.Unlock()
			return
		}
		n := min(len(p.queue)-p.head, grab)
		w.conns = append(w.conns[:0], p.queue[p.head:p.head+n]...)
		clear(p.queue[p.head : p.head+n])
		p.head += n
		if p.head > 1024 && p.head*2 > len(p.queue) {
			m := copy(p.queue, p.queue[p.head:])
			clear(p.queue[m:])
			p.queue, p.head = p.queue[:m], 0
		}
		p.mu.Unlock()
		for i, c := range w.conns {
			if c.take() && !w.serve(c) {
				c.release()
			}
			w.conns[i] = nil
		}
		p.mu.Lock()
	}
}
