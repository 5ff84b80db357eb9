//go:build !linux

package transport

// watcher: epoll is Linux only; elsewhere every connection is watched by a
// goroutine blocked in a read (see watchByReading).
type watcher struct{}

func (w *watcher) add(*Engine, *Conn) bool { return false }
func (w *watcher) rearm(*Conn) bool        { return false }
func (w *watcher) idle()                   {}
