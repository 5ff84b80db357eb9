package transport

import (
	"runtime/debug"
	"sync"
	"time"
)

// Burst collection. Taking a connection over leaves garbage behind: the
// 4 KiB reader and writer net/http hands out with Hijack, the parsed
// request, the handshake's buffers, the stack of the handler's goroutine.
// None of it is live once the engine owns the connection (a connection
// then holds 2–4 KB), but an idle server allocates nothing, so no garbage
// collection comes to free it until the runtime's periodic one, two
// minutes later, and the scavenger returns freed pages to the system only
// slowly after that. After a burst of 3,000 connections the process's RSS
// therefore showed 6–14 KiB per connection for a few minutes.
//
// The engine returns that memory once a burst is over: when at least
// burstMin connections were taken over and none came for burstQuiet, it
// runs debug.FreeOSMemory (a collection, then every free page back to the
// system). One collection per burst costs a few milliseconds of CPU
// against the burst's thousands of handshakes; a steady trickle of
// connections never triggers it, and under steady load the runtime's own
// collections do the work.
const (
	burstMin   = 256
	burstQuiet = time.Second
)

// burst counts connections taken over and collects after a burst.
type burst struct {
	min     int
	quiet   time.Duration
	collect func()

	mu    sync.Mutex
	n     int         // connections in the current burst
	last  time.Time   // when the last one came
	timer *time.Timer // fires b.quiet after the last one
}

func newBurst() *burst {
	return &burst{min: burstMin, quiet: burstQuiet, collect: debug.FreeOSMemory}
}

// note counts one connection taken over.
func (b *burst) note() {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if now.Sub(b.last) >= b.quiet {
		b.n = 0 // a trickle is not a burst
	}
	b.last = now
	b.n++
	if b.n < b.min {
		return
	}
	if b.timer == nil {
		b.timer = time.AfterFunc(b.quiet, b.fire)
		return
	}
	b.timer.Reset(b.quiet)
}

// fire runs once a burst has been quiet for b.quiet.
func (b *burst) fire() {
	b.mu.Lock()
	due := b.n >= b.min
	b.n, b.timer = 0, nil
	b.mu.Unlock()
	if due {
		b.collect()
	}
}

// stop cancels a pending collection.
func (b *burst) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.n = 0
}
