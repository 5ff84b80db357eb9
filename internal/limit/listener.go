package limit

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
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
}

// Listener wraps a net.Listener: it refuses connections beyond a maximum
// and reports header timeouts (slowloris) when its ConnState method is set
// as the http.Server's ConnState hook.
type Listener struct {
	net.Listener
	o    ListenerOptions
	open atomic.Int64
}

// NewListener wraps ln.
func NewListener(ln net.Listener, o ListenerOptions) *Listener {
	return &Listener{Listener: ln, o: o}
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
		l.open.Add(1)
		return &conn{Conn: c, l: l}, nil
	}
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
	c.closeOnce.Do(func() { c.l.open.Add(-1) })
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
	c.state.Store(int32(st))
}
