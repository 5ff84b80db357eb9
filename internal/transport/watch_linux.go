package transport

import (
	"syscall"
)

// watcher watches the sockets of an engine's connections with one epoll
// set and one goroutine (blocked in epoll_wait): for the peer's FIN or RST
// (a one-way stream: an idle stream whose client left ends at once,
// without a goroutine per connection blocked in a read), and for data (a
// connection whose client talks: its turn reads it). Each registration is
// one-shot: a connection that read is watched again (rearm) after its
// turn. The goroutine runs while the engine has connections. Its fields
// are guarded by Engine.mu.
type watcher struct {
	running bool
	failed  bool   // epoll is not available: fall back to reads
	epfd    int    // the epoll set
	pipe    [2]int // wakes the goroutine to let it stop
}

// events returns the epoll events to watch c for.
func events(c *Conn) uint32 {
	if c.reads {
		return syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT
	}
	return syscall.EPOLLRDHUP | syscall.EPOLLONESHOT
}

// add watches c's socket. e.mu is held. It reports false if it cannot
// (the caller then watches by reading).
func (w *watcher) add(e *Engine, c *Conn) bool {
	if w.failed {
		return false
	}
	if !w.running {
		if !w.start(e) {
			w.failed = true
			return false
		}
	}
	return w.ctl(syscall.EPOLL_CTL_ADD, c)
}

// rearm watches c's socket again after a one-shot event. e.mu is held.
func (w *watcher) rearm(c *Conn) bool {
	if !w.running {
		return false
	}
	return w.ctl(syscall.EPOLL_CTL_MOD, c)
}

func (w *watcher) ctl(op int, c *Conn) bool {
	var err error
	cerr := c.raw.Control(func(fd uintptr) {
		// The event's data is the connection's id, never reused, so that
		// an event for a connection closed meanwhile (its fd maybe reused)
		// finds nothing. The registration goes away with the socket.
		ev := syscall.EpollEvent{Events: events(c), Fd: int32(uint32(c.id)), Pad: int32(uint32(c.id >> 32))}
		err = syscall.EpollCtl(w.epfd, op, int(fd), &ev)
	})
	return cerr == nil && err == nil
}

func (w *watcher) start(e *Engine) bool {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return false
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return false
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN} // data 0: the pipe (connection ids start at 1)
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(p[0])
		syscall.Close(p[1])
		return false
	}
	w.epfd, w.pipe, w.running = epfd, p, true
	go w.loop(e, epfd, p)
	return true
}

// idle is called when the engine's last connection ended: it wakes the
// goroutine so that it stops. e.mu is held.
func (w *watcher) idle() {
	if w.running {
		_, _ = syscall.Write(w.pipe[1], []byte{0})
	}
}

func (w *watcher) loop(e *Engine, epfd int, pipe [2]int) {
	events := make([]syscall.EpollEvent, 128)
	var ready []*Conn
	for {
		n, err := syscall.EpollWait(epfd, events, -1)
		if err == syscall.EINTR {
			continue
		}
		e.mu.Lock()
		if err != nil {
			// Not expected; fall back to reads for new connections.
			// The connections watched so far are found dead by their
			// writes (keep-alives).
			e.log.Error("transport: epoll_wait failed; watching new connections by reading", "err", err)
			w.running, w.failed = false, true
			e.mu.Unlock()
			syscall.Close(epfd)
			syscall.Close(pipe[0])
			syscall.Close(pipe[1])
			return
		}
		woken := false
		for _, ev := range events[:n] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if id == 0 {
				woken = true
				continue
			}
			if c := e.lookup(id); c != nil {
				ready = append(ready, c)
			}
		}
		if woken {
			var b [64]byte
			for {
				if n, _ := syscall.Read(pipe[0], b[:]); n <= 0 {
					break
				}
			}
			if len(e.conns) == 0 {
				w.running = false
				e.mu.Unlock()
				syscall.Close(epfd)
				syscall.Close(pipe[0])
				syscall.Close(pipe[1])
				return
			}
		}
		e.mu.Unlock()
		for i, c := range ready {
			if c.reads {
				c.readable() // the turn reads: data, or the peer's close
			} else {
				c.peerGone()
			}
			ready[i] = nil
		}
		ready = ready[:0]
	}
}
