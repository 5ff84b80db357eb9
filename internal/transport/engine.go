package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/reqlife"
)

// Options configure an Engine. Zero values mean the defaults.
type Options struct {
	// Name is the transport's name in logs and metrics ("sse", "ws").
	Name string
	// KeepAlive is the interval of keep-alives on an idle connection.
	// Default DefaultKeepAlive.
	KeepAlive time.Duration
	// WriteTimeout bounds each write. Default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Connections, if set, counts the open connections.
	Connections prometheus.Gauge
	// Delivered, if set, counts the events written.
	Delivered prometheus.Counter
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Engine serves streams on connections taken over from net/http (the lean
// path: see the package doc) and, through ServeStandard, on responses that
// cannot be taken over. Create it with NewEngine; its methods are safe for
// concurrent use.
type Engine struct {
	name         string
	keepAlive    time.Duration
	writeTimeout time.Duration
	gauge        prometheus.Gauge
	delivered    prometheus.Counter
	log          *slog.Logger

	mu       sync.Mutex // guards conns, nextID, drained, shutting and watch
	conns    map[uint64]*Conn
	nextID   uint64
	drained  chan struct{} // closed when conns empties (Shutdown waits on it)
	shutting bool
	watch    watcher // readiness of the connections' sockets (watch_linux.go)

	pool  pool      // the ready queue and its workers (pool.go)
	co    coalescer // the coalescing window (coalesce.go)
	wheel wheel     // keep-alives and deadlines (wheel.go)
	burst *burst    // returns a burst's handshake garbage (burst.go)
}

// NewEngine returns an Engine.
func NewEngine(o Options) *Engine {
	if o.KeepAlive <= 0 {
		o.KeepAlive = DefaultKeepAlive
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	e := &Engine{
		name: o.Name, keepAlive: o.KeepAlive, writeTimeout: o.WriteTimeout,
		gauge: o.Connections, delivered: o.Delivered, log: o.Logger,
		conns: make(map[uint64]*Conn), burst: newBurst(),
	}
	e.pool.init(e, runtime.GOMAXPROCS(0))
	e.co.pool = &e.pool
	e.wheel.init(o.KeepAlive)
	return e
}

// KeepAlive returns the engine's keep-alive interval.
func (e *Engine) KeepAlive() time.Duration { return e.keepAlive }

// WriteTimeout returns the engine's write timeout.
func (e *Engine) WriteTimeout() time.Duration { return e.writeTimeout }

// Logger returns the engine's logger.
func (e *Engine) Logger() *slog.Logger { return e.log }

// Lean reports whether r's connection can be taken over by the engine: a
// cleartext HTTP/1.1 request (HTTP/2 cannot be hijacked, and HTTP/1.0 has
// no chunked encoding). TLS connections are served with blocking I/O in
// goroutines (see Serve), which only the WebSocket transport does.
func Lean(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.ProtoMinor >= 1 && r.TLS == nil
}

// Hijack takes r's connection over from net/http (see Lean): it returns
// the connection and what the client sent after the request, already read
// by net/http's buffer (a WebSocket client's first frames). The request's
// end, for the middleware (reqlife), is then the stream's.
func Hijack(w http.ResponseWriter) (net.Conn, []byte, error) {
	nc, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// net/http's deadlines were for the request; the stream sets its own.
	_ = nc.SetDeadline(time.Time{})
	var early []byte
	if n := rw.Reader.Buffered(); n > 0 {
		early, _ = rw.Reader.Peek(n)
		early = bytes.Clone(early)
	}
	return nc, early, nil
}

// ConnOptions describe a connection handed to Serve.
type ConnOptions struct {
	// Conn is the hijacked connection (see Hijack).
	Conn net.Conn
	// Request is the request the connection was taken from.
	Request *http.Request
	// Head is written first, with the write deadline, before Serve
	// returns (an HTTP response head and the stream's opening); nil when
	// the protocol wrote it already (a WebSocket handshake).
	Head []byte
	// HeadPayload is how many of Head's bytes are body bytes.
	HeadPayload int
	// Sub is the subscription, or nil for a connection that subscribes
	// later (Conn.Attach). The connection owns it.
	Sub *hub.Subscription
	// Expires, if set, is when the subscriber's credentials expire: a
	// turn with DueExpired follows.
	Expires time.Time
	// Read: the client talks on the connection (WebSocket); its turns get
	// DueRead when it sent something, and read it with Conn.Read.
	// Otherwise the engine watches the connection only for the peer's
	// close (a client of a one-way stream sends nothing).
	Read bool
	// Early holds what the client sent after the request (see Hijack).
	Early []byte
	// Proto is the connection's protocol.
	Proto Protocol
}

// Serve serves a connection taken over from net/http until its stream
// ends: it writes the head, registers the connection and returns. From
// then on the engine owns the connection and the subscription. It returns
// false, having closed both, when the head cannot be written.
func (e *Engine) Serve(o ConnOptions) bool {
	var end func(int64)
	if life := reqlife.From(o.Request.Context()); life != nil {
		end = life.Detach()
	}
	c := &Conn{e: e, nc: o.Conn, proto: o.Proto, end: end, state: stBusy}
	if rawIOSupported && o.Request.TLS == nil {
		c.raw = rawConn(o.Conn)
	}
	if len(o.Head) > 0 {
		_ = o.Conn.SetWriteDeadline(time.Now().Add(e.writeTimeout))
		_, err := o.Conn.Write(o.Head)
		_ = o.Conn.SetWriteDeadline(time.Time{})
		if err != nil {
			if o.Sub != nil {
				o.Sub.Close()
			}
			_ = o.Conn.Close()
			o.Proto.Closed(c)
			if end != nil {
				end(0)
			}
			return false
		}
		c.bytes = int64(o.HeadPayload)
	}
	if c.raw != nil {
		setSendBuffer(c.raw, sendBuffer)
	}
	if !o.Expires.IsZero() {
		c.expires.Store(clockAt(o.Expires))
	}
	if len(o.Early) > 0 {
		c.input.push(o.Early)
		c.readDue.Store(true)
	}
	if e.gauge != nil {
		e.gauge.Inc()
	}
	// c stays busy (owned by this setup) until queued below: wakes
	// meanwhile only mark it dirty.
	e.add(c, o.Read)
	e.burst.note()
	if o.Sub != nil {
		c.sub.Store(o.Sub)
		o.Sub.Notify(c.Wake)
	}
	c.mu.Lock()
	c.state, c.dirty = stQueued, false
	c.mu.Unlock()
	e.pool.enqueue(c) // the subscription's prelude is queued already
	return true
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

// rawConn returns the socket of nc (unwrapping connection wrappers that
// have a NetConn method, as the limit listener's does), or nil.
func rawConn(nc net.Conn) syscall.RawConn {
	for range 8 {
		if _, ok := nc.(*tls.Conn); ok {
			return nil // its bytes are not the socket's
		}
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

// add registers c: readiness watch and keep-alives.
func (e *Engine) add(c *Conn, read bool) {
	e.mu.Lock()
	e.nextID++
	c.id = e.nextID
	e.conns[c.id] = c
	c.reads = read
	watched := c.raw != nil && e.watch.add(e, c)
	if e.shutting {
		c.shutDue.Store(true)
	}
	e.mu.Unlock()
	if !watched {
		go watchByReading(c, read)
	}
	e.wheel.add(c)
}

func (e *Engine) remove(c *Conn) {
	e.mu.Lock()
	delete(e.conns, c.id)
	if len(e.conns) == 0 {
		if e.drained != nil {
			close(e.drained)
			e.drained = nil
		}
		e.watch.idle()
	}
	e.mu.Unlock()
	e.wheel.remove()
}

// lookup returns the connection with id, or nil. e.mu is held.
func (e *Engine) lookup(id uint64) *Conn { return e.conns[id] }

// settle counts a finished connection in the metrics.
func (e *Engine) settle(c *Conn) {
	if c.nc != nil && e.gauge != nil {
		e.gauge.Dec()
	}
	if e.delivered != nil && c.wrote > 0 {
		e.delivered.Add(float64(c.wrote))
	}
}

// Len returns the number of connections the engine serves.
func (e *Engine) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.conns)
}

// Shutdown tells every connection that the server is shutting down (a turn
// with DueShutdown: a WebSocket connection closes with 1001; a stream ends
// once the hub, which must be closed first, has ended its subscription),
// then waits until every connection has ended or ctx ends, and closes
// those that remain. Connections served later get DueShutdown at once.
// Streams on the standard path end with their requests, which
// http.Server.Shutdown waits for.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.burst.stop()
	e.mu.Lock()
	e.shutting = true
	all := make([]*Conn, 0, len(e.conns))
	for _, c := range e.conns {
		all = append(all, c)
	}
	if len(e.conns) == 0 {
		e.mu.Unlock()
		return nil
	}
	if e.drained == nil {
		e.drained = make(chan struct{})
	}
	drained := e.drained
	e.mu.Unlock()
	for _, c := range all {
		c.shutDue.Store(true)
		c.Wake()
	}
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
	}
	e.mu.Lock()
	left := make([]*Conn, 0, len(e.conns))
	for _, c := range e.conns {
		left = append(left, c)
	}
	e.mu.Unlock()
	for _, c := range left {
		c.gone.Store(true)
		_ = c.nc.Close() // a blocked flush fails at once
		c.Wake()
	}
	return ctx.Err()
}
