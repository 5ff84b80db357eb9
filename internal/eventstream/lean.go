//go:build unix

package eventstream

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/reqlife"
	"github.com/heraldpush/herald/sse"
)

// The lean path serves a cleartext HTTP/1.1 subscription without keeping
// net/http's per-connection state: once the request is validated and
// subscribed, the handler hijacks the connection, writes the response head
// and the first chunk itself, and returns. net/http then drops the
// connection's serve goroutine (and its grown stack), its background-read
// goroutine and its buffers (4 KiB reader, 4 KiB writer, 2 KiB chunk
// buffer). What a connection keeps is its socket, its subscription and a
// small leanConn: no goroutine, no buffer, no timer.
//
//   - Writes: the subscription calls back (hub.Subscription.Notify) when
//     events are queued; the connection is put on a ready queue served by
//     at most GOMAXPROCS short-lived worker goroutines, which pop its events
//     and write them as one chunk with a non-blocking write(2). A connection
//     whose socket buffer is full gets a goroutine of its own until the rest
//     is written, with the write deadline (--write-timeout) of the standard
//     path.
//   - Coalescing: a connection woken less than coalesceWindow after its
//     last write waits for the rest of the window (one timer for all), so
//     that a busy topic's events go out several to a write instead of one
//     syscall each; an event after a quiet spell goes out at once.
//   - Keep-alives: one timer wheel per handler, not a ticker per connection.
//   - Dead peers: on Linux one epoll set watches every lean connection for
//     the peer's FIN or RST; elsewhere a small goroutine per connection
//     blocks in a one-byte read.
//
// The wire format is the standard path's (chunked, same headers, first
// comment, retry hint, keep-alive comments, herald.auth-expired), plus
// "Connection: close": the connection is closed when the stream ends.
// HTTP/2 (TLS, --h2c) cannot be hijacked and keeps the standard path, as do
// TLS HTTP/1.1 and HTTP/1.0 requests.

// Connection states: who owns a leanConn.
const (
	stBusy   = iota // a worker, a flushing goroutine or the setup owns it
	stIdle          // nobody: a wake queues it
	stQueued        // on the ready queue
	stDone          // torn down
)

// leanState is a Handler's lean machinery, created on first use.
type leanState struct {
	keepAlive    time.Duration
	writeTimeout time.Duration
	log          *slog.Logger
	gauge        prometheus.Gauge   // open SSE connections, or nil
	delivered    prometheus.Counter // events written, or nil

	mu      sync.Mutex // guards conns, nextID, drained and the watcher
	conns   map[uint64]*leanConn
	nextID  uint64
	drained chan struct{} // closed when conns empties (Shutdown waits on it)
	watch   epoll         // dead-peer watcher (see lean_linux.go)

	lmu        sync.Mutex // guards later and laterTimer
	later      []*leanConn
	laterTimer *time.Timer // armed while later is not empty

	qmu        sync.Mutex // guards the ready queue and the workers
	queue      []*leanConn
	head       int
	workers    int
	maxWorkers int
	free       []*worker

	wheel wheel
}

func (h *Handler) leanState() *leanState {
	h.leanOnce.Do(func() {
		l := &leanState{
			keepAlive:    h.KeepAlive,
			writeTimeout: h.WriteTimeout,
			log:          h.logger(),
			conns:        make(map[uint64]*leanConn),
			maxWorkers:   runtime.GOMAXPROCS(0),
		}
		if l.keepAlive <= 0 {
			l.keepAlive = 15 * time.Second
		}
		if l.writeTimeout <= 0 {
			l.writeTimeout = 10 * time.Second
		}
		if h.Metrics != nil {
			l.gauge = h.Metrics.Connections.WithLabelValues("sse")
			l.delivered = h.Metrics.Delivered.WithLabelValues("sse")
		}
		l.wheel.init(l.keepAlive)
		h.lean = l
	})
	return h.lean
}

// leanConn is one hijacked subscription.
type leanConn struct {
	l      *leanState
	id     uint64
	sub    *hub.Subscription
	nc     net.Conn        // the hijacked connection; closing it releases the listener's count
	raw    syscall.RawConn // its socket, for non-blocking writes; nil: every write blocks in a goroutine
	end    func(int64)     // ends the request for the middleware (reqlife), or nil
	expiry *time.Timer

	mu    sync.Mutex
	state uint8
	dirty bool // woken while busy

	closed    atomic.Bool
	gone      atomic.Bool  // the peer closed or reset the connection
	expired   atomic.Bool  // the subscriber's credentials expired
	kaDue     atomic.Bool  // a keep-alive is due
	lastWrite atomic.Int64 // wheel tick of the last write
	wroteAt   atomic.Int64 // clock() at the last write

	// Owned by whoever holds the connection busy.
	wrote uint64 // events written
	bytes int64  // body bytes written (without chunk framing)
}

// sendBuffer fixes a lean connection's socket send buffer (the kernel
// doubles it). Left to autotuning, Linux grows the buffer of a subscriber
// that stopped reading up to tcp_wmem's maximum (4 MiB by default) and
// copies that much into it: with 1,000 stalled subscribers and 10 KB events
// at 100/s, the copies took the hub's core and the readers' p99 rose from
// 0.25 s to 3 s. A fixed buffer makes a stalled subscriber block early (it
// is then cut off by its queue cap or the write timeout) and bounds the
// kernel memory it pins. 512 KiB in flight is 5 MB/s per subscriber at a
// 100 ms round trip, more than an event stream needs.
const sendBuffer = 256 << 10

// coalesceWindow is how long after a write a connection's next write
// waits, so that events arriving meanwhile share it.
const coalesceWindow = time.Millisecond

// clockBase makes clock monotonic.
var clockBase = time.Now()

// clock returns monotonic nanoseconds.
func clock() int64 { return int64(time.Since(clockBase)) }

var (
	crlf           = []byte("\r\n")
	keepAliveChunk = []byte("3\r\n:\n\n\r\n")
	lastChunk      = []byte("0\r\n\r\n")
	authExpired    = func() []byte {
		ev := sse.Event{Type: AuthExpiredEventType, Data: `{"reason":"token expired"}`}
		b, _ := ev.AppendTo(nil)
		return b
	}()
)

// serveLean serves sub on r's connection through the lean path, if r can
// take it. It returns false, having done nothing, when it cannot: the
// caller then uses Stream. When it returns true the lean path owns sub and
// the connection.
func (h *Handler) serveLean(w http.ResponseWriter, r *http.Request, sub *hub.Subscription, expires time.Time) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor < 1 || r.TLS != nil {
		return false
	}
	l := h.leanState()
	hdr := w.Header()
	nc, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	hdr.Set("Content-Type", "text/event-stream; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	hdr.Del("Content-Length")
	if hdr.Get("Date") == "" {
		hdr.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	hdr.Set("Transfer-Encoding", "chunked")
	hdr.Set("Connection", "close")
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	_ = hdr.Write(&b)
	b.WriteString("\r\n")
	first := []byte(": ok\n\n")
	if h.Retry > 0 {
		first = sse.AppendRetry(first, h.Retry)
	}
	head := appendChunk(b.Bytes(), first)

	var end func(int64)
	if life := reqlife.From(r.Context()); life != nil {
		end = life.Detach()
	}
	_ = nc.SetWriteDeadline(time.Now().Add(l.writeTimeout))
	_, err = nc.Write(head)
	_ = nc.SetWriteDeadline(time.Time{})
	if err != nil {
		sub.Close()
		_ = nc.Close()
		if end != nil {
			end(0)
		}
		return true
	}
	c := &leanConn{l: l, sub: sub, nc: nc, raw: rawConn(nc), end: end, state: stBusy, bytes: int64(len(first))}
	if c.raw != nil {
		_ = c.raw.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, sendBuffer)
		})
	}
	if l.gauge != nil {
		l.gauge.Inc()
	}
	// c stays busy (owned by this setup) until queued below: wakes
	// meanwhile only mark it dirty.
	l.add(c)
	if !expires.IsZero() {
		c.expiry = time.AfterFunc(time.Until(expires), c.expire)
	}
	sub.Notify(c.wake)
	c.mu.Lock()
	c.state, c.dirty = stQueued, false
	c.mu.Unlock()
	l.enqueue(c) // the prelude is queued already
	return true
}

// rawConn returns the socket of nc (unwrapping connection wrappers that
// have a NetConn method, as tls.Conn and the limit listener's do), or nil.
func rawConn(nc net.Conn) syscall.RawConn {
	for range 8 {
		if sc, ok := nc.(syscall.Conn); ok {
			rc, err := sc.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		nc = u.NetConn()
	}
	return nil
}

// appendChunk appends p to dst as one HTTP/1.1 chunk.
func appendChunk(dst, p []byte) []byte {
	dst = strconv.AppendUint(dst, uint64(len(p)), 16)
	dst = append(dst, '\r', '\n')
	dst = append(dst, p...)
	return append(dst, '\r', '\n')
}

// wake schedules c: events are queued, its subscription ended, or a
// keep-alive, expiry or dead peer needs handling.
func (c *leanConn) wake() {
	c.mu.Lock()
	switch c.state {
	case stIdle:
		c.state = stQueued
		c.mu.Unlock()
		if clock()-c.wroteAt.Load() < int64(coalesceWindow) {
			c.l.enqueueLater(c)
		} else {
			c.l.enqueue(c)
		}
		return
	case stBusy:
		c.dirty = true
	}
	c.mu.Unlock()
}

func (c *leanConn) expire() {
	c.expired.Store(true)
	c.wake()
}

// peerGone is called when the peer closed or reset the connection.
func (c *leanConn) peerGone() {
	c.gone.Store(true)
	c.wake()
}

// take makes the caller (a worker) the owner of a queued connection.
func (c *leanConn) take() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stQueued {
		return false
	}
	c.state, c.dirty = stBusy, false
	return true
}

// release gives up ownership; a wake received meanwhile queues c again.
func (c *leanConn) release() {
	c.mu.Lock()
	switch {
	case c.state != stBusy:
		c.mu.Unlock()
	case c.dirty:
		c.state, c.dirty = stQueued, false
		c.mu.Unlock()
		c.l.enqueue(c)
	default:
		c.state = stIdle
		c.mu.Unlock()
	}
}

// teardown ends the stream: it closes the subscription and the connection
// and settles the accounting. Only the owner calls it; it is idempotent.
func (c *leanConn) teardown() {
	c.mu.Lock()
	if c.state == stDone {
		c.mu.Unlock()
		return
	}
	c.state = stDone
	c.mu.Unlock()
	c.closed.Store(true)
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.sub.Close()
	_ = c.nc.Close()
	c.l.remove(c)
	if c.l.gauge != nil {
		c.l.gauge.Dec()
	}
	if c.l.delivered != nil && c.wrote > 0 {
		c.l.delivered.Add(float64(c.wrote))
	}
	if c.end != nil {
		c.end(c.bytes)
	}
}

// flush writes p with the write deadline, blocking, in a goroutine of its
// own (the socket buffer was full), then gives the connection back to the
// pool, or ends it.
func (c *leanConn) flush(parts [][]byte, payload int, ending bool) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.l.writeTimeout))
	var err error
	for _, p := range parts {
		if _, err = c.nc.Write(p); err != nil {
			break
		}
	}
	_ = c.nc.SetWriteDeadline(time.Time{})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.sub.EndSlow() // the client did not take the write in time
	}
	if err != nil || ending {
		c.teardown()
		return
	}
	c.bytes += int64(payload)
	c.lastWrite.Store(c.l.wheel.now.Load())
	c.wroteAt.Store(clock())
	c.release()
}

// add registers c: dead-peer watch and keep-alives.
func (l *leanState) add(c *leanConn) {
	l.mu.Lock()
	l.nextID++
	c.id = l.nextID
	l.conns[c.id] = c
	watched := c.raw != nil && l.watch.add(l, c)
	l.mu.Unlock()
	if !watched {
		go watchByReading(c)
	}
	l.wheel.add(c)
}

func (l *leanState) remove(c *leanConn) {
	l.mu.Lock()
	delete(l.conns, c.id)
	if len(l.conns) == 0 {
		if l.drained != nil {
			close(l.drained)
			l.drained = nil
		}
		l.watch.idle()
	}
	l.mu.Unlock()
	l.wheel.remove()
}

// lookup returns the connection with id, or nil. l.mu is held.
func (l *leanState) lookup(id uint64) *leanConn { return l.conns[id] }

// watchByReading detects a dead peer by blocking in a read: the client
// sends nothing after its request, so a read ends only when the peer closes
// or resets the connection, or when teardown closes it. A client that
// keeps sending is not read beyond a few KiB (its writes then fail).
func watchByReading(c *leanConn) {
	var b [512]byte
	for n := 0; n < 8<<10; {
		m, err := c.nc.Read(b[:])
		n += m
		if err != nil {
			c.peerGone()
			return
		}
	}
}

// enqueue puts a queued connection on the ready queue and starts a worker
// if fewer than GOMAXPROCS run.
func (l *leanState) enqueue(c *leanConn) {
	l.qmu.Lock()
	l.queue = append(l.queue, c)
	spawn := l.workers < l.maxWorkers
	if spawn {
		l.workers++
	}
	l.qmu.Unlock()
	if spawn {
		go l.work()
	}
}

// enqueueLater queues c when the coalescing window ends.
func (l *leanState) enqueueLater(c *leanConn) {
	l.lmu.Lock()
	l.later = append(l.later, c)
	if len(l.later) == 1 {
		if l.laterTimer == nil {
			l.laterTimer = time.AfterFunc(coalesceWindow, l.flushLater)
		} else {
			l.laterTimer.Reset(coalesceWindow)
		}
	}
	l.lmu.Unlock()
}

// flushLater moves the connections that waited for their window to the
// ready queue.
func (l *leanState) flushLater() {
	l.lmu.Lock()
	later := l.later
	l.later = nil
	l.lmu.Unlock()
	if len(later) == 0 {
		return
	}
	l.qmu.Lock()
	l.queue = append(l.queue, later...)
	spawn := min(l.maxWorkers-l.workers, (len(later)+grab-1)/grab)
	l.workers += spawn
	l.qmu.Unlock()
	for range spawn {
		go l.work()
	}
	clear(later)
	l.lmu.Lock()
	if l.later == nil {
		l.later = later[:0]
	}
	l.lmu.Unlock()
}

// grab is how many ready connections a worker takes at a time.
const grab = 64

// work serves ready connections until the queue is empty.
func (l *leanState) work() {
	l.qmu.Lock()
	var w *worker
	if n := len(l.free); n > 0 {
		w, l.free = l.free[n-1], l.free[:n-1]
	} else {
		w = newWorker(l)
	}
	for {
		if l.head == len(l.queue) {
			clear(l.queue)
			l.queue, l.head = l.queue[:0], 0
			l.workers--
			l.free = append(l.free, w)
			l.qmu.Unlock()
			return
		}
		n := min(len(l.queue)-l.head, grab)
		w.conns = append(w.conns[:0], l.queue[l.head:l.head+n]...)
		clear(l.queue[l.head : l.head+n])
		l.head += n
		if l.head > 1024 && l.head*2 > len(l.queue) {
			m := copy(l.queue, l.queue[l.head:])
			clear(l.queue[m:])
			l.queue, l.head = l.queue[:m], 0
		}
		l.qmu.Unlock()
		for i, c := range w.conns {
			if c.take() && !w.serve(c) {
				c.release()
			}
			w.conns[i] = nil
		}
		l.qmu.Lock()
	}
}

// worker holds a worker goroutine's scratch space; workers are reused.
type worker struct {
	l     *leanState
	conns []*leanConn
	batch []*hub.Event

	parts [][]byte // what serve writes: chunk header, events, ...
	hdr   []byte
	iov   []syscall.Iovec

	// The state of one raw write (see rawWrite).
	n     int
	err   error
	write func(fd uintptr) bool
}

func newWorker(l *leanState) *worker {
	w := &worker{l: l}
	w.write = w.rawWrite
	return w
}

// rawWrite writes w.parts to fd without blocking: it stops when the
// socket buffer is full (EAGAIN). w.n counts the bytes written.
func (w *worker) rawWrite(fd uintptr) bool {
	parts := w.parts
	for len(parts) > 0 {
		iov := w.iov[:0]
		for _, p := range parts[:min(len(parts), maxIovecs)] {
			if len(p) > 0 {
				v := syscall.Iovec{Base: &p[0]}
				v.SetLen(len(p))
				iov = append(iov, v)
			}
		}
		w.iov = iov
		n, err := writev(int(fd), iov)
		clear(iov) // no pointers kept into the events
		if n > 0 {
			w.n += n
		}
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			if err != syscall.EAGAIN {
				w.err = err
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

// serve handles one owned connection: it writes what is due as one chunk.
// It reports whether it handed the connection on (to a flushing goroutine)
// or tore it down; otherwise the caller releases it.
func (w *worker) serve(c *leanConn) (handedOn bool) {
	if c.gone.Load() {
		c.teardown()
		return true
	}
	// What is due is gathered in w.parts, the events' shared bytes
	// included, and written with one writev(2): no copy.
	parts := w.parts[:0]
	payload, ending, hasHdr := 0, false, false
	if c.expired.Load() {
		w.hdr = appendChunk(w.hdr[:0], authExpired)
		parts = append(parts, w.hdr, lastChunk)
		payload, ending, hasHdr = len(authExpired), true, true
	} else {
		var open bool
		w.batch, open = c.sub.Pop(w.batch[:0])
		if len(w.batch) > 0 && (open || hub.Graceful(c.sub.Err())) {
			for _, ev := range w.batch {
				payload += len(ev.SSE())
			}
			w.hdr = strconv.AppendUint(w.hdr[:0], uint64(payload), 16)
			w.hdr = append(w.hdr, '\r', '\n')
			parts = append(parts, w.hdr)
			hasHdr = true
			for _, ev := range w.batch {
				parts = append(parts, ev.SSE())
			}
			parts = append(parts, crlf)
			c.wrote += uint64(len(w.batch))
		}
		if c.kaDue.Swap(false) && len(parts) == 0 && open {
			parts = append(parts, keepAliveChunk)
			payload = 3
		}
		if !open {
			if errors.Is(c.sub.Err(), hub.ErrSlowConsumer) {
				w.l.log.Info("slow subscriber cut off", "topics", c.sub.Topics())
			}
			parts = append(parts, lastChunk)
			ending = true
		}
	}
	w.parts = parts
	defer func() {
		clear(w.batch)
		clear(w.parts)
	}()
	if len(parts) == 0 {
		return false
	}
	total := 0
	for _, p := range parts {
		total += len(p)
	}
	n, err := 0, error(nil)
	if c.raw != nil {
		w.n, w.err = 0, nil
		if err = c.raw.Write(w.write); err == nil {
			n, err = w.n, w.err
		}
	}
	switch {
	case err != nil:
		c.teardown()
		return true
	case n < total:
		// The socket buffer is full: the rest is written with a
		// deadline by a goroutine of the connection's own. It keeps
		// references to the shared event bytes, not a copy: a thousand
		// stalled subscribers must not hold a thousand copies.
		rest := make([][]byte, 0, len(parts))
		for i, p := range parts {
			if n >= len(p) {
				n -= len(p)
				continue
			}
			p, n = p[n:], 0
			if i == 0 && hasHdr {
				p = append([]byte(nil), p...) // the worker's scratch
			}
			rest = append(rest, p)
		}
		go c.flush(rest, payload, ending)
		return true
	case ending:
		c.bytes += int64(payload)
		c.teardown()
		return true
	}
	c.bytes += int64(payload)
	c.lastWrite.Store(w.l.wheel.now.Load())
	c.wroteAt.Store(clock())
	return false
}

// wheel sends keep-alives: one ticker per handler instead of one per
// connection. A connection sits in the slot of the tick when its
// keep-alive falls due; when the slot comes up, the connection gets a
// keep-alive if it wrote nothing for the interval, or moves to the slot of
// its new due tick. Keep-alives go out between one interval and one
// interval plus a tick (1/16 of the interval, at most 1 s) after the last
// write.
type wheel struct {
	tick time.Duration
	span int64        // the keep-alive interval in ticks
	now  atomic.Int64 // ticks since the wheel was made

	mu    sync.Mutex
	slots [][]*leanConn
	pos   int
	count int
	stop  chan struct{} // non-nil while the ticker runs
}

func (w *wheel) init(interval time.Duration) {
	w.tick = min(max(interval/16, time.Millisecond), time.Second)
	w.span = int64((interval + w.tick - 1) / w.tick)
	w.slots = make([][]*leanConn, w.span+1)
}

func (w *wheel) add(c *leanConn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c.lastWrite.Store(w.now.Load())
	i := (w.pos + int(w.span)) % len(w.slots)
	w.slots[i] = append(w.slots[i], c)
	w.count++
	if w.stop == nil {
		w.stop = make(chan struct{})
		go w.run(w.stop)
	}
}

func (w *wheel) remove() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.count--
	if w.count == 0 && w.stop != nil {
		close(w.stop)
		w.stop = nil
		clear(w.slots)
	}
}

func (w *wheel) run(stop chan struct{}) {
	t := time.NewTicker(w.tick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			w.advance(stop)
		}
	}
}

func (w *wheel) advance(stop chan struct{}) {
	var wake []*leanConn
	w.mu.Lock()
	if w.stop != stop {
		w.mu.Unlock()
		return
	}
	now := w.now.Add(1)
	w.pos = (w.pos + 1) % len(w.slots)
	slot := w.slots[w.pos]
	w.slots[w.pos] = nil
	for _, c := range slot {
		if c.closed.Load() {
			continue
		}
		k := w.span - (now - c.lastWrite.Load())
		if k <= 0 {
			c.kaDue.Store(true)
			wake = append(wake, c)
			k = w.span
		}
		i := (w.pos + int(k)) % len(w.slots)
		w.slots[i] = append(w.slots[i], c)
	}
	w.mu.Unlock()
	for _, c := range wake {
		c.wake()
	}
}

// Shutdown waits until every stream of the lean path has ended (the hub
// must have been closed, which ends their subscriptions) or ctx ends; then
// it closes the connections that remain. Streams on the standard path end
// with their requests, which http.Server.Shutdown waits for.
func (h *Handler) Shutdown(ctx context.Context) error {
	l := h.leanState()
	l.mu.Lock()
	if len(l.conns) == 0 {
		l.mu.Unlock()
		return nil
	}
	if l.drained == nil {
		l.drained = make(chan struct{})
	}
	drained := l.drained
	l.mu.Unlock()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	left := make([]*leanConn, 0, len(l.conns))
	for _, c := range l.conns {
		left = append(left, c)
	}
	l.mu.Unlock()
	for _, c := range left {
		c.gone.Store(true)
		_ = c.nc.Close() // a blocked flush fails at once
		c.wake()
	}
	return ctx.Err()
}
