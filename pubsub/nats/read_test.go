package nats_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

// TestReadLongHistoryWhenTheConsumerFails: Read (and ReadTopic) take the
// first messages of a long history one by one and the rest with a
// consumer. When that
// consumer delivers nothing (the server does not answer its pull within
// the client's second, as on a loaded machine) or loses a delivery on the
// way, Read must still return every message exactly: before the fix, it
// took the silence for the end of the subject and returned the history
// cut short, without saying so (a resuming client lost events), or took
// the lost delivery for a truncation (a needless herald.reset).
func TestReadLongHistoryWhenTheConsumerFails(t *testing.T) {
	needNATS(t)
	cases := []struct {
		name string
		// drop is armed while Read runs.
		up   func(subject string) bool // client → server PUB/HPUB
		down func(subject, reply string, n int) bool
	}{
		{name: "pulls unanswered", up: func(subject string) bool {
			return strings.Contains(subject, ".CONSUMER.MSG.NEXT.")
		}},
		{name: "a delivery lost", down: func(_, reply string, n int) bool {
			return strings.HasPrefix(reply, "$JS.ACK.") && n == 3
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startDropProxy(t, strings.TrimPrefix(natsURL(), "nats://"), tc.up, tc.down)
			name := uniqueStream(t, natsURL())
			b := open(t, "nats://"+p.addr(), name, pubsub.Retention{})
			defer b.Close()
			ctx := context.Background()
			var want []string
			var first pubsub.Position
			for i := range 40 {
				data := fmt.Sprintf("m%02d", i)
				pos, err := b.Publish(ctx, &pubsub.Message{Topics: []string{"t"}, Data: data})
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = pos
				} else {
					want = append(want, data)
				}
			}
			reads := []struct {
				name string
				read func() ([]*pubsub.Message, bool, error)
			}{
				{"Read", func() ([]*pubsub.Message, bool, error) {
					snap, err := b.Read(ctx, pubsub.Query{Topics: []string{"t"}, After: &first})
					return snap.Events, snap.Truncated, err
				}},
				{"ReadTopic", func() ([]*pubsub.Message, bool, error) {
					msgs, _, err := b.ReadTopic(ctx, "t", first, 0)
					return msgs, false, err
				}},
			}
			for _, rd := range reads {
				p.arm(true)
				msgs, truncated, err := rd.read()
				p.arm(false)
				if err != nil {
					t.Fatalf("%s: %v", rd.name, err)
				}
				if p.dropped() == 0 {
					t.Fatalf("%s: the proxy dropped nothing: it no longer reads with a consumer, and this test tests nothing", rd.name)
				}
				var got []string
				for _, m := range msgs {
					got = append(got, m.Data)
				}
				if truncated || strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("%s after %v: truncated %v, %d events %v; want not truncated, the %d events %v",
						rd.name, first, truncated, len(got), got, len(want), want)
				}
			}
		})
	}
}

// dropProxy forwards a NATS client's connection to the server, parsing the
// protocol on both sides so that, while armed, it can drop whole messages:
// a client's PUB/HPUB by subject (a pull request the server then never
// answers), or a server's MSG/HMSG by subject and reply (a delivery lost
// on the way). It stands for a loaded machine without waiting for one.
type dropProxy struct {
	ln       net.Listener
	target   string
	up       func(subject string) bool
	down     func(subject, reply string, n int) bool
	armed    atomic.Bool
	ndropped atomic.Int64
	ndown    atomic.Int64 // server messages matched while armed
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func startDropProxy(t *testing.T, target string, up func(string) bool, down func(string, string, int) bool) *dropProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln, target: target, up: up, down: down}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *dropProxy) addr() string { return p.ln.Addr().String() }

// arm starts (on) or stops dropping; it counts anew from each start.
func (p *dropProxy) arm(on bool) {
	if on {
		p.ndropped.Store(0)
		p.ndown.Store(0)
	}
	p.armed.Store(on)
}

func (p *dropProxy) dropped() int64 { return p.ndropped.Load() }

func (p *dropProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *dropProxy) accept() {
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
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(s, c, true)
		go p.pipe(c, s, false)
	}
}

// pipe copies the protocol from src to dst, message by message, dropping
// what the armed filter names. fromClient tells the direction.
func (p *dropProxy) pipe(dst, src net.Conn, fromClient bool) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	r := bufio.NewReaderSize(src, 64<<10)
	w := bufio.NewWriterSize(dst, 64<<10)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		var payload []byte
		drop := false
		if len(f) > 0 {
			op := strings.ToUpper(f[0])
			if n, ok := payloadSize(op, f, fromClient); ok {
				payload = make([]byte, n+2) // with its CRLF
				if _, err := io.ReadFull(r, payload); err != nil {
					return
				}
				drop = p.armed.Load() && p.drops(op, f, fromClient)
			}
		}
		if drop {
			p.ndropped.Add(1)
		} else {
			if _, err := w.WriteString(line); err != nil {
				return
			}
			if _, err := w.Write(payload); err != nil {
				return
			}
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// payloadSize returns the size of the payload that follows a protocol
// line with fields f, if it has one: the last field of PUB/HPUB (client)
// and MSG/HMSG (server).
func payloadSize(op string, f []string, fromClient bool) (int, bool) {
	switch {
	case fromClient && (op == "PUB" || op == "HPUB"),
		!fromClient && (op == "MSG" || op == "HMSG"):
		n, err := strconv.Atoi(f[len(f)-1])
		return n, err == nil
	}
	return 0, false
}

// drops applies the filters to a message line's fields: PUB subject
// [reply] size, HPUB subject [reply] hsize size, MSG subject sid [reply]
// size, HMSG subject sid [reply] hsize size.
func (p *dropProxy) drops(op string, f []string, fromClient bool) bool {
	if fromClient {
		return p.up != nil && p.up(f[1])
	}
	if p.down == nil {
		return false
	}
	sizes := 1
	if op == "HMSG" {
		sizes = 2
	}
	reply := ""
	if len(f) == 3+sizes+1 {
		reply = f[3]
	}
	if !strings.HasPrefix(reply, "$JS.ACK.") {
		return false
	}
	n := int(p.ndown.Add(1))
	return p.down(f[1], reply, n)
}
