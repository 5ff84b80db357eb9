//go:build !unix

package transport

import "syscall"

// rawIO: without unix's non-blocking writev, every write is finished by a
// goroutine with a deadline.
type rawIO struct{}

func (r *rawIO) init() {}

func (r *rawIO) write(syscall.RawConn, [][]byte) (int, error) { return 0, nil }

func readRaw(syscall.RawConn, []byte) (int, error) { return 0, nil }

// rawIOSupported: connections are served with blocking I/O in goroutines.
const rawIOSupported = false

func setSendBuffer(syscall.RawConn, int) {}
