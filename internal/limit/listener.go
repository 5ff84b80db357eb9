package limit

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ListenerOptions configure a Listener.
type ListenerOptions struct {
	// Max bounds the open connections; 0 means no limit.
	Max int
	// Refusal is written to a connection refused for being over Max, before
	// it is closed (e.g. a raw HTTP/1.1 503 response). Nil: closed at once.
	Refusal []byte
	// OnRefuse is called for each refused connection.
	OnRefuse func()
	// OnHeaderTimeout is called when a connection times out in the middle
	// of a request's headers (a slow or stalled client: see Listener).
	OnHeaderTimeout func()

	// MaxIdlePerAddr bounds the connections of one peer address that are
	// not serving a request (new, reading a request's headers, or idle
	// between keep-alive requests), so that one address cannot hold every
	// connection Max allows; 0 means no limit. It needs ConnState.
	MaxIdlePerAddr int
	// Exempt are peers MaxIdlePerAddr does not apply to (trusted reverse
	// proxies, which carry many clients' connections).
	Exempt []netip.Prefix
	// RefusalIdle is written to a connection refused by MaxIdlePerAddr
	// (nil: Refusal). OnRefuseIdle is called for each.
	RefusalIdle  []byte
	OnRefuseIdle func()
}

// Listener wraps a net.Listener: it refuses connections beyond a maximum,
// and more idle connections from one address than MaxIdlePerAddr, and
// reports header timeouts (slowloris) when its ConnState method is set as
// the http.Server's ConnState hook. Its one lock, mu, guards the idle
// counts and is never held while another lock is taken.
type Listener struct {
	net.Listener
	o    ListenerOptions
	open atomic.Int64

	mu   sync.Mutex
	idle map[netip.Addr]int // connections per peer not serving a request
}

// NewListener wraps ln.
func NewListener(ln net.Listener, o ListenerOptions) *Listener {
	if o.RefusalIdle == nil {
		o.RefusalIdle = o.Refusal
	}
	return &Listener{Listener: ln, o: o, idle: make(map[netip.Addr]int)}
}

// Idle returns the connections of addr that are not serving a request.
func (l *Listener) Idle(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.idle[addr]
}

// Open returns the number of open connections.
func (l *Listener) Open() int64 { return l.open.Load() }

// Accept returns the next connection within the limit. Connections over
// the limit are answered with the refusal and closed in the background.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.o.Max > 0 && l.open.Load() >= int64(l.o.Max) {
			if l.o.OnRefuse != nil {
				l.o.OnRefuse()
			}
			go refuse(c, l.o.Refusal)
			continue
		}
		cn := &conn{Conn: c, l: l}
		if l.o.MaxIdlePerAddr > 0 {
			if a, ok := peerAddr(c); ok && !l.exempt(a) {
				cn.addr = a
				l.mu.Lock()
				n := l.idle[a]
				if n >= l.o.MaxIdlePerAddr {
					l.mu.Unlock()
					if l.o.OnRefuseIdle != nil {
						l.o.OnRefuseIdle()
					}
					go refuse(c, l.o.RefusalIdle)
					continue
				}
				l.idle[a] = n + 1
				l.mu.Unlock()
				cn.counted.Store(true)
			}
		}
		l.open.Add(1)
		return cn, nil
	}
}

func (l *Listener) exempt(a netip.Addr) bool {
	for _, p := range l.o.Exempt {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// setIdle counts c as idle (or not) for its address.
func (l *Listener) setIdle(c *conn, idle bool) {
	if !c.addr.IsValid() || !c.counted.CompareAndSwap(!idle, idle) {
		return
	}
	l.mu.Lock()
	if idle {
		l.idle[c.addr]++
	} else if l.idle[c.addr]--; l.idle[c.addr] <= 0 {
		delete(l.idle, c.addr)
	}
	l.mu.Unlock()
}

func peerAddr(c net.Conn) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap().WithZone(""), true
}

// refuse writes msg to c, stops writing, and reads (briefly) what the client
// sent so that closing does not reset the connection before it reads msg.
func refuse(c net.Conn, msg []byte) {
	defer c.Close()
	if len(msg) == 0 {
		return
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(msg); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

// conn counts itself open until closed, and tracks what it reads between
// requests to tell a header timeout from an idle one.
type conn struct {
	net.Conn
	l         *Listener
	addr      netip.Addr  // peer, when MaxIdlePerAddr counts it
	counted   atomic.Bool // counted as idle for addr
	closeOnce sync.Once
	state     atomic.Int32 // http.ConnState
	pending   atomic.Int64 // bytes read since the last request began or ended
	reported  atomic.Bool
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.pending.Add(int64(n))
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && c.inHeaders() && c.reported.CompareAndSwap(false, true) {
		if f := c.l.o.OnHeaderTimeout; f != nil {
			f()
		}
	}
	return n, err
}

// inHeaders reports whether the connection has read part of a request and
// is not serving one: a timeout now is a header timeout.
func (c *conn) inHeaders() bool {
	switch http.ConnState(c.state.Load()) {
	case http.StateNew, http.StateIdle:
		return c.pending.Load() > 0
	}
	return false
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.l.open.Add(-1)
		c.l.setIdle(c, false)
	})
	return err
}

// ConnState is an http.Server ConnState hook that keeps each connection's
// state for header-timeout detection. Chain it if the server has another.
func (l *Listener) ConnState(nc net.Conn, st http.ConnState) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, ok := nc.(*conn)
	if !ok {
		return
	}
	switch st {
	case http.StateActive, http.StateIdle:
		c.pending.Store(0)
	}
	switch st {
	case http.StateIdle:
		c.l.setIdle(c, true)
	case http.StateActive, http.StateHijacked, http.StateClosed:
		c.l.setIdle(c, false)
	}
	c.state.Store(int32(st))
}
