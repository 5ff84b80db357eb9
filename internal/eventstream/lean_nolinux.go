//go:build unix && !linux

package eventstream

// epoll is Linux only: elsewhere every lean connection is watched by a
// goroutine blocked in a read (see watchByReading).
type epoll struct{}

func (e *epoll) add(*leanState, *leanConn) bool { return false }
func (e *epoll) idle()                          {}
