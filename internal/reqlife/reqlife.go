// Package reqlife tells middleware when a request really ends. A handler
// usually ends its request by returning; one that hijacks the connection
// and keeps serving it afterwards (the lean text/event-stream path) ends it
// later. Middleware that holds something for the length of a request (a
// concurrency slot, a request log line with the duration) registers its
// end-of-request work with OnEnd instead of a defer, and it runs at the
// right moment in both cases.
//
// The outermost middleware creates the Life with New and calls Returned
// when its handler returns; a handler that outlives its return calls
// Detach before returning and the end function once it is done.
package reqlife

import (
	"context"
	"sync"
)

// Life is one request's lifetime. Its methods are safe for concurrent use.
type Life struct {
	mu       sync.Mutex
	returned bool // the handler returned
	detached bool // ... but the request goes on
	ended    bool // the detached request ended
	ran      bool // the OnEnd funcs ran
	fns      []func()
	bytes    int64
}

type key struct{}

// New returns ctx carrying a new Life, and the Life.
func New(ctx context.Context) (context.Context, *Life) {
	l := &Life{}
	return context.WithValue(ctx, key{}, l), l
}

// From returns the Life in ctx, or nil.
func From(ctx context.Context) *Life {
	l, _ := ctx.Value(key{}).(*Life)
	return l
}

// OnEnd registers f to run once the request ends: when the handler
// returns, or, if it detached, when it calls its end function. Functions
// run last registered first. Registered after the end, f runs at once.
func (l *Life) OnEnd(f func()) {
	l.mu.Lock()
	if l.ran {
		l.mu.Unlock()
		f()
		return
	}
	l.fns = append(l.fns, f)
	l.mu.Unlock()
}

// Detach marks the request as going on after its handler returns. The
// caller must call end exactly once when the response is complete, with
// the number of body bytes it wrote (see Bytes); extra calls do nothing.
func (l *Life) Detach() (end func(bytes int64)) {
	l.mu.Lock()
	l.detached = true
	l.mu.Unlock()
	return func(n int64) {
		l.mu.Lock()
		if l.ended {
			l.mu.Unlock()
			return
		}
		l.ended = true
		l.bytes += n
		l.mu.Unlock()
		l.run()
	}
}

// Detached reports whether the handler detached the request.
func (l *Life) Detached() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.detached
}

// Bytes returns the body bytes a detached handler reported writing after
// its return.
func (l *Life) Bytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bytes
}

// Returned is called by the middleware that created the Life once the
// handler has returned. It runs the OnEnd functions, unless the handler
// detached and has not ended yet.
func (l *Life) Returned() {
	l.mu.Lock()
	l.returned = true
	l.mu.Unlock()
	l.run()
}

// run runs the OnEnd functions once, when the request has ended.
func (l *Life) run() {
	l.mu.Lock()
	if l.ran || !l.returned || (l.detached && !l.ended) {
		l.mu.Unlock()
		return
	}
	l.ran = true
	fns := l.fns
	l.fns = nil
	l.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}
