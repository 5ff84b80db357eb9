//go:build unix

package eventstream

import (
	"syscall"
	"unsafe"
)

// rawWriteFD is write(2) on a non-blocking socket without the scheduler's
// entersyscall/exitsyscall: it never blocks, and a worker writing to many
// sockets in a row would otherwise have its P retaken by sysmon and handed
// to another thread over and over.
func rawWriteFD(fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if e != 0 {
		return int(n), e
	}
	return int(n), nil
}
