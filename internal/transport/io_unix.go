//go:build unix

package transport

import (
	"io"
	"syscall"
	"unsafe"
)

// maxIovecs is the most buffers one writev takes (IOV_MAX is 1024).
const maxIovecs = 1024

// rawIO is a worker's state for one non-blocking write.
type rawIO struct {
	parts [][]byte
	iov   []syscall.Iovec
	n     int
	err   error
	fn    func(fd uintptr) bool
}

func (r *rawIO) init() { r.fn = r.writeFD }

// write writes parts to the socket without blocking: it stops when the
// socket buffer is full. It returns the bytes written.
func (r *rawIO) write(rc syscall.RawConn, parts [][]byte) (int, error) {
	r.parts, r.n, r.err = parts, 0, nil
	err := rc.Write(r.fn)
	r.parts = nil
	if err != nil {
		return 0, err
	}
	return r.n, r.err
}

func (r *rawIO) writeFD(fd uintptr) bool {
	parts := r.parts
	for len(parts) > 0 {
		iov := r.iov[:0]
		for _, p := range parts[:min(len(parts), maxIovecs)] {
			if len(p) > 0 {
				v := syscall.Iovec{Base: &p[0]}
				v.SetLen(len(p))
				iov = append(iov, v)
			}
		}
		r.iov = iov
		n, err := writev(int(fd), iov)
		clear(iov) // no pointers kept into the events
		if n > 0 {
			r.n += n
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			if err != syscall.EAGAIN {
				r.err = err
			}
			return true
		}
		if n <= 0 {
			return true // nothing left to write (empty parts), or stuck
		}
		// Skip what was written; a partial write means the buffer is full.
		for n > 0 && len(parts) > 0 {
			if n < len(parts[0]) {
				return true
			}
			n -= len(parts[0])
			parts = parts[1:]
		}
	}
	return true
}

// writev is writev(2) on a non-blocking socket without the scheduler's
// entersyscall/exitsyscall: it never blocks, and a worker writing to many
// sockets in a row would otherwise have its P retaken by sysmon and handed
// to another thread over and over.
func writev(fd int, iov []syscall.Iovec) (int, error) {
	if len(iov) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// readRaw reads from the socket without blocking: (0, nil) when nothing is
// there, io.EOF when the peer closed.
func readRaw(rc syscall.RawConn, p []byte) (int, error) {
	var (
		n   int
		err error
	)
	cerr := rc.Read(func(fd uintptr) bool {
		for {
			n, err = syscall.Read(int(fd), p)
			if err != syscall.EINTR {
				return true
			}
		}
	})
	switch {
	case cerr != nil:
		return 0, cerr
	case err == syscall.EAGAIN:
		return 0, nil
	case err != nil:
		return 0, err
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// rawIOSupported: connections are written and read without blocking.
const rawIOSupported = true

// setSendBuffer fixes the socket's send buffer (see sendBuffer).
func setSendBuffer(rc syscall.RawConn, size int) {
	_ = rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, size)
	})
}
