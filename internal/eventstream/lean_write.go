//go:build unix

package eventstream

import (
	"syscall"
	"unsafe"
)

// maxIovecs is the most buffers one writev takes (IOV_MAX is 1024).
const maxIovecs = 1024

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
