package hub

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/pubsub"
)

// logState is the hub's side of one log (a shard, or the broker itself):
// it listens to the log only while a local subscription needs it
// (interest), and tracks what it fanned out for Sync.
type logState struct {
	h      *Hub
	k      int
	broker pubsub.Broker

	mu    sync.Mutex // guards users, cur, stop
	users int        // subscriptions that need the log
	cur   *listenRun // the current listener, nil when none
	stop  *time.Timer

	// received is the offset of the newest message fanned out; Sync waits
	// on it. syncMu guards waiters; nwait counts them, so that fan-out
	// takes no lock while nobody waits.
	received atomic.Uint64
	count    atomic.Uint64 // messages received from the log (ShardStats)
	nwait    atomic.Int32
	syncMu   sync.Mutex
	waiters  []*waiter
}

type waiter struct {
	off  uint64
	done chan struct{}
}

// listenRun is one Listen call on a log. It is the pubsub.Handler the
// broker calls.
type listenRun struct {
	ls      *logState
	cancel  context.CancelFunc
	started chan struct{} // closed by HandleStart
	done    chan struct{} // closed when Listen returned
	err     error         // Listen's result, set before done is closed
	stopped bool          // cancelled (guarded by logState.mu)
}

func (r *listenRun) HandleMessage(m *pubsub.Message) {
	r.ls.count.Add(1)
	r.ls.h.fanOut(r.ls.k, m)
	r.ls.receivedUpTo(m.Pos.Offset)
}

func (r *listenRun) HandleEpoch(epoch string) { r.ls.h.epochChanged(r.ls.k, epoch) }

func (r *listenRun) HandleStart(pubsub.Position) { close(r.started) }

// start begins a Listen call, after prev (if any) has returned: a broker
// runs one at a time. ls.mu is held.
func (ls *logState) start(prev *listenRun) *listenRun {
	ctx, cancel := context.WithCancel(ls.h.runCtx)
	r := &listenRun{ls: ls, cancel: cancel, started: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if prev != nil {
			<-prev.done
		}
		r.err = ls.broker.Listen(ctx, r)
		if r.err != nil && ctx.Err() == nil {
			ls.h.log.Error("broker listener stopped", "shard", ls.k, "err", r.err)
			ls.h.endLog(ls.k, ErrClosed)
		}
	}()
	return r
}

// probeEvery is how long acquire waits for a listener to start before it
// checks, by probe, that the broker answers at all.
const probeEvery = 2 * time.Second

// acquire records that a subscription needs the log and returns once the
// hub listens to it: every message published from then on reaches the
// hub. While the listener does not start, probe is called every
// probeEvery: its error (the broker is unavailable) is returned.
func (ls *logState) acquire(ctx context.Context, probe func() error) error {
	ls.mu.Lock()
	ls.users++
	if ls.stop != nil {
		ls.stop.Stop()
		ls.stop = nil
	}
	r := ls.cur
	if r == nil || r.stopped || r.finished() {
		// The next Listen waits until the last one (stopping) returned.
		r = ls.start(r)
		ls.cur = r
	}
	ls.mu.Unlock()
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-r.started:
			return nil
		case <-r.done:
			ls.release()
			if r.err != nil {
				return fmt.Errorf("hub: listening to shard %d: %w", ls.k, r.err)
			}
			return ErrClosed
		case <-ctx.Done():
			ls.release()
			return fmt.Errorf("hub: waiting for the broker to listen: %w", ctx.Err())
		case <-ls.h.done:
			ls.release()
			return ErrClosed
		case <-t.C:
			if err := probe(); err != nil {
				ls.release()
				return fmt.Errorf("hub: read snapshot: %w", err)
			}
		}
	}
}

func (r *listenRun) finished() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// release records that a subscription no longer needs the log. When none
// does, the hub stops listening to it after Options.Linger.
func (ls *logState) release() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.users--
	if ls.users > 0 || ls.cur == nil || ls.cur.stopped {
		return
	}
	r := ls.cur
	stopNow := func() {
		r.stopped = true
		r.cancel()
	}
	if ls.h.linger <= 0 {
		stopNow()
		return
	}
	var t *time.Timer
	t = time.AfterFunc(ls.h.linger, func() {
		ls.mu.Lock()
		defer ls.mu.Unlock()
		if ls.stop == t && ls.users == 0 && ls.cur == r {
			ls.stop = nil
			stopNow()
		}
	})
	ls.stop = t
}

// listening reports whether the hub listens to the log now.
func (ls *logState) listening() bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.cur == nil || ls.cur.stopped || ls.cur.finished() {
		return false
	}
	select {
	case <-ls.cur.started:
		return true
	default:
		return false
	}
}

// halt stops the listener (the hub's Run ended) and waits for it.
func (ls *logState) halt() {
	ls.mu.Lock()
	r := ls.cur
	ls.cur = nil
	if ls.stop != nil {
		ls.stop.Stop()
		ls.stop = nil
	}
	ls.mu.Unlock()
	if r != nil {
		r.cancel()
		<-r.done
	}
}

// receivedUpTo records that the message at off was fanned out, and wakes
// the Sync calls waiting for it.
func (ls *logState) receivedUpTo(off uint64) {
	ls.received.Store(off)
	if ls.nwait.Load() == 0 {
		return
	}
	ls.syncMu.Lock()
	kept := ls.waiters[:0]
	for _, w := range ls.waiters {
		if w.off <= off {
			close(w.done)
		} else {
			kept = append(kept, w)
		}
	}
	clear(ls.waiters[len(kept):])
	ls.waiters = kept
	ls.syncMu.Unlock()
}

// sync waits until the message at off was fanned out (see Hub.Sync).
func (ls *logState) sync(ctx context.Context, pos pubsub.Position) error {
	if ls.received.Load() >= pos.Offset || !ls.listening() {
		return nil
	}
	w := &waiter{off: pos.Offset, done: make(chan struct{})}
	ls.nwait.Add(1)
	defer ls.nwait.Add(-1)
	ls.syncMu.Lock()
	ls.waiters = append(ls.waiters, w)
	ls.syncMu.Unlock()
	if ls.received.Load() >= pos.Offset {
		ls.receivedUpTo(ls.received.Load())
	}
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		ls.syncMu.Lock()
		for i, x := range ls.waiters {
			if x == w {
				ls.waiters = append(ls.waiters[:i], ls.waiters[i+1:]...)
				break
			}
		}
		ls.syncMu.Unlock()
		return fmt.Errorf("hub: waiting for %v to be delivered: %w", pos, ctx.Err())
	}
}
