package web_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpProxy is a TCP proxy on loopback in front of a server, for network
// conditions DevTools cannot emulate: latency on WebSocket frames (DevTools
// delays HTTP responses only), and a connection that stays open but goes
// silent. Every byte, both ways, waits delay before it is passed on, on
// the connections whose first request starts with delayPrefix ("" for
// none); Freeze stops passing bytes from the server on some of the
// connections open now, without closing them.
type tcpProxy struct {
	URL string

	ln          net.Listener
	target      string
	delay       time.Duration
	delayPrefix []byte

	mu     sync.Mutex
	conns  []*proxied
	closed bool
	wg     sync.WaitGroup
}

type proxied struct {
	client, server net.Conn
	head           atomic.Value // []byte: the start of the last request the client sent
	frozen         atomic.Bool
}

func newTCPProxy(t *testing.T, target string, delay time.Duration, delayPrefix string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{URL: "http://" + ln.Addr().String(), ln: ln, target: target, delay: delay, delayPrefix: []byte(delayPrefix)}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxied{client: c, server: s}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			s.Close()
			return
		}
		p.conns = append(p.conns, pc)
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(pc)
	}
}

func (p *tcpProxy) serve(pc *proxied) {
	defer p.wg.Done()
	br := bufio.NewReader(pc.client)
	if _, err := br.Peek(1); err != nil {
		pc.client.Close()
		pc.server.Close()
		return
	}
	head, _ := br.Peek(br.Buffered())
	delay := time.Duration(0)
	if len(p.delayPrefix) > 0 && bytes.HasPrefix(head, p.delayPrefix) {
		delay = p.delay
	}
	done := make(chan struct{}, 2)
	go func() { pipe(pc.server, br, delay, nil, pc.request); done <- struct{}{} }()
	go func() { pipe(pc.client, pc.server, delay, &pc.frozen, nil); done <- struct{}{} }()
	<-done
	pc.client.Close()
	pc.server.Close()
	<-done
}

// request notes the start of a request the client sends on a kept-alive
// connection (a chunk that starts with a method).
func (pc *proxied) request(chunk []byte) {
	for _, m := range []string{"GET /", "POST /", "HEAD /"} {
		if bytes.HasPrefix(chunk, []byte(m)) {
			pc.head.Store(bytes.Clone(chunk[:min(len(chunk), 256)]))
			return
		}
	}
}

// pipe copies src to dst, each chunk delay after it was read (seen, if not
// nil, is told of each); while frozen is set, chunks are dropped and the
// connection stays open.
func pipe(dst io.Writer, src io.Reader, delay time.Duration, frozen *atomic.Bool, seen func([]byte)) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	ch := make(chan chunk, 4096)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				if seen != nil {
					seen(buf[:n])
				}
				ch <- chunk{buf[:n], time.Now().Add(delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		if d := time.Until(c.at); d > 0 {
			<-time.After(d) // the latency the proxy adds to the network
		}
		if frozen != nil && frozen.Load() {
			continue
		}
		if _, err := dst.Write(c.b); err != nil {
			for range ch {
			}
			return
		}
	}
}

// Freeze makes the connections open now whose last request starts with
// prefix silent from the server's side, and returns how many.
func (p *tcpProxy) Freeze(prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.conns {
		if head, _ := c.head.Load().([]byte); bytes.HasPrefix(head, []byte(prefix)) {
			c.frozen.Store(true)
			n++
		}
	}
	return n
}

func (p *tcpProxy) Close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.client.Close()
		c.server.Close()
	}
	p.wg.Wait()
}
