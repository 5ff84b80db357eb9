package eventstream

import (
	"syscall"
)

// epoll watches every lean connection of a handler for its peer's FIN or
// RST with one epoll set and one goroutine (blocked in epoll_wait), so that
// an idle stream whose client left ends at once, without a goroutine per
// connection blocked in a read. The goroutine runs while the handler has
// lean connections. Its fields are guarded by leanState.mu.
type epoll struct {
	running bool
	failed  bool   // epoll is not available: fall back to reads
	epfd    int    // the epoll set
	pipe    [2]int // wakes the goroutine to let it stop
}

// add watches c's socket. l.mu is held. It reports false if it cannot
// (the caller then watches by reading).
func (e *epoll) add(l *leanState, c *leanConn) bool {
	if e.failed {
		return false
	}
	if !e.running {
		if !e.start(l) {
			e.failed = true
			return false
		}
	}
	var err error
	cerr := c.raw.Control(func(fd uintptr) {
		// The event's data is the connection's id, never reused, so that
		// an event for a connection closed meanwhile (its fd maybe reused)
		// finds nothing. The registration goes away with the socket.
		ev := syscall.EpollEvent{Events: syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(uint32(c.id)), Pad: int32(uint32(c.id >> 32))}
		err = syscall.EpollCtl(e.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	return cerr == nil && err == nil
}

func (e *epoll) start(l *leanState) bool {
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
	e.epfd, e.pipe, e.running = epfd, p, true
	go e.loop(l, epfd, p)
	return true
}

// idle is called when the handler's last lean connection ended: it wakes
// the goroutine so that it stops. l.mu is held.
func (e *epoll) idle() {
	if e.running {
		_, _ = syscall.Write(e.pipe[1], []byte{0})
	}
}

func (e *epoll) loop(l *leanState, epfd int, pipe [2]int) {
	events := make([]syscall.EpollEvent, 128)
	var gone []*leanConn
	for {
		n, err := syscall.EpollWait(epfd, events, -1)
		if err == syscall.EINTR {
			continue
		}
		l.mu.Lock()
		if err != nil {
			// Not expected; fall back to reads for new connections.
			// The connections watched so far are found dead by their
			// writes (keep-alives).
			l.log.Error("lean SSE: epoll_wait failed; watching new connections by reading", "err", err)
			e.running, e.failed = false, true
			l.mu.Unlock()
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
			if c := l.lookup(id); c != nil {
				gone = append(gone, c)
			}
		}
		if woken {
			var b [64]byte
			for {
				if n, _ := syscall.Read(pipe[0], b[:]); n <= 0 {
					break
				}
			}
			if len(l.conns) == 0 {
				e.running = false
				l.mu.Unlock()
				syscall.Close(epfd)
				syscall.Close(pipe[0])
				syscall.Close(pipe[1])
				return
			}
		}
		l.mu.Unlock()
		for i, c := range gone {
			c.peerGone()
			gone[i] = nil
		}
		gone = gone[:0]
	}
}
