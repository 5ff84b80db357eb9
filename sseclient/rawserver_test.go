package sseclient_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/sse"
	"github.com/heraldpush/herald/sseclient"
)

// rawServer is a hand-written HTTP/1.1 server on loopback: each connection
// is answered by the next of its scripts, written byte for byte; once they
// are used up it answers 204 No Content. It records every request.
type rawServer struct {
	t       *testing.T
	ln      net.Listener
	url     string
	scripts []func(*rawConn)
	wg      sync.WaitGroup

	mu      sync.Mutex
	clients map[string]*countingConn // the client's connections, by its address
	reqs    []*http.Request
	times   []time.Time // when each request came
	ends    []time.Time // when each answer was complete
}

type rawConn struct {
	net.Conn
	t      *testing.T
	client *countingConn // the client's end, when it dialed with rawServer.client
}

// send writes each chunk in a write of its own and, when the client
// dialed with rawServer.client, writes the next only once the client has
// read everything before it: the client gets the chunks in separate reads.
func (c *rawConn) send(chunks ...string) {
	written := int64(0)
	for i, s := range chunks {
		if i > 0 && c.client != nil {
			if !testkit.Within(testkit.Timeout, func() bool { return c.client.read.Load() >= written || c.client.closed.Load() }) {
				c.t.Logf("raw server: the client read %d of %d bytes", c.client.read.Load(), written)
			}
		}
		if _, err := c.Write([]byte(s)); err != nil {
			c.t.Logf("raw server: write: %v", err)
			return
		}
		written += int64(len(s))
	}
}

// countingConn is a client's connection that counts the bytes it read.
type countingConn struct {
	net.Conn
	read   atomic.Int64
	closed atomic.Bool
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	if err != nil {
		c.closed.Store(true)
	}
	return n, err
}

func (c *countingConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// client returns an HTTP client (a transport of its own) whose
// connections tell the server how much they read, so that send can split
// a stream into the client's reads.
func (s *rawServer) client(t *testing.T) *http.Client {
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cc := &countingConn{Conn: c}
		s.mu.Lock()
		s.clients[c.LocalAddr().String()] = cc
		s.mu.Unlock()
		return cc, nil
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

const streamHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"

const chunkedHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n"

// chunks encodes pieces in the chunked transfer coding, without the last
// chunk.
func chunks(pieces ...string) string {
	var b strings.Builder
	for _, p := range pieces {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(p), p)
	}
	return b.String()
}

// stream returns a script that sends an event stream in chunks, then
// closes the connection.
func stream(chunks ...string) func(*rawConn) {
	return func(c *rawConn) { c.send(append([]string{streamHead}, chunks...)...) }
}

// answer returns a script that sends raw bytes and closes the connection.
func answer(raw string) func(*rawConn) {
	return func(c *rawConn) { c.send(raw) }
}

func newRawServer(t *testing.T, scripts ...func(*rawConn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{t: t, ln: ln, url: "http://" + ln.Addr().String() + "/events", scripts: scripts, clients: map[string]*countingConn{}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			req, err := http.ReadRequest(bufio.NewReader(conn))
			if err != nil {
				return
			}
			s.mu.Lock()
			n := len(s.reqs)
			s.reqs = append(s.reqs, req)
			s.times = append(s.times, time.Now())
			client := s.clients[conn.RemoteAddr().String()]
			s.mu.Unlock()
			script := answer("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
			if n < len(s.scripts) {
				script = s.scripts[n]
			}
			script(&rawConn{Conn: conn, t: s.t, client: client})
			s.mu.Lock()
			s.ends = append(s.ends, time.Now())
			s.mu.Unlock()
		}()
	}
}

func (s *rawServer) lastEventIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, r := range s.reqs {
		out = append(out, fmt.Sprintf("%q", r.Header.Values("Last-Event-ID")))
	}
	return out
}

// pause returns how long the client waited between the end of answer i
// and request i+1.
func (s *rawServer) pause(i int) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.times[i+1].Sub(s.ends[i])
}

// got is what a client made of a stream.
type got struct {
	events []sse.Event
	err    error
	states []error // the errors OnState saw
}

func (g got) String() string {
	var b strings.Builder
	for _, ev := range g.events {
		fmt.Fprintf(&b, "[%s|%s|%q]", ev.ID, ev.Type, ev.Data)
	}
	return b.String()
}

func run(t *testing.T, s *rawServer, opts *sseclient.Options) got {
	t.Helper()
	var g got
	o := sseclient.Options{InitialDelay: 10 * time.Millisecond}
	if opts != nil {
		o = *opts
	}
	o.HTTPClient = s.client(t)
	o.OnState = func(st sseclient.State, err error) {
		if err != nil {
			g.states = append(g.states, err)
		}
	}
	for ev, err := range sseclient.New(s.url, &o).Events(t.Context()) {
		if err != nil {
			g.err = err
			break
		}
		g.events = append(g.events, ev)
	}
	return g
}

func TestTrickyStreams(t *testing.T) {
	long := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	var longChunks []string
	for i := 0; i < len(long); i += 100_000 {
		longChunks = append(longChunks, long[i:min(i+100_000, len(long))])
	}
	tests := []struct {
		name    string
		scripts []func(*rawConn)
		want    string   // events, as got.String
		ids     []string // Last-Event-ID of each request
	}{
		{
			name:    "CRLF split across reads",
			scripts: []func(*rawConn){stream("id: 1\r", "\ndata: a\r", "\ndata: b\r", "\n\r", "\n")},
			want:    `[1|message|"a\nb"]`,
			ids:     []string{`[]`, `["1"]`},
		},
		{
			name:    "CR line ends, split before the next line",
			scripts: []func(*rawConn){stream("id: 1\rdata: a\r", "\r", "event: x\rdata: b\r\r")},
			want:    `[1|message|"a"][1|x|"b"]`,
			ids:     []string{`[]`, `["1"]`},
		},
		{
			name:    "BOM split across reads",
			scripts: []func(*rawConn){stream("\xEF\xBB", "\xBF", "data: x\n\n\xEF\xBB\xBFdata: not a field\n\ndata: y\n\n")},
			want:    `[|message|"x"][|message|"y"]`,
		},
		{
			name:    "comments only, then events on the next connection",
			scripts: []func(*rawConn){stream(": hello\n\n", ":\n", ":x\r\n"), stream("id: 7\ndata: after\n\n")},
			want:    `[7|message|"after"]`,
			ids:     []string{`[]`, `[]`, `["7"]`},
		},
		{
			name:    "id-only block resumes the next connection",
			scripts: []func(*rawConn){stream("id: 1\ndata: a\n\n", "id: 5\n\n"), stream("data: b\n\n")},
			want:    `[1|message|"a"][5|message|"b"]`,
			ids:     []string{`[]`, `["5"]`, `["5"]`},
		},
		{
			name:    "event cut off mid-way is discarded and resumed",
			scripts: []func(*rawConn){stream("id: 1\ndata: a\n\nid: 2\ndata: par"), stream("id: 2\ndata: partial\n\n")},
			want:    `[1|message|"a"][2|message|"partial"]`,
			ids:     []string{`[]`, `["1"]`, `["2"]`},
		},
		{
			name:    "very long line in many reads",
			scripts: []func(*rawConn){stream(append(append([]string{"data: "}, longChunks...), "\n\n")...)},
			want:    fmt.Sprintf(`[|message|%q]`, long),
		},
		{
			name: "chunked transfer encoding with a CRLF split between chunks",
			scripts: []func(*rawConn){func(c *rawConn) {
				c.send(chunkedHead, chunks("id: 1\r"), chunks("\ndata: a\r"), chunks("\n\r"), chunks("\n"), "0\r\n\r\n")
			}},
			want: `[1|message|"a"]`,
			ids:  []string{`[]`, `["1"]`},
		},
		{
			name:    "500 then recover",
			scripts: []func(*rawConn){answer("HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{\"error\":\"database\"}"), stream("data: ok\n\n")},
			want:    `[|message|"ok"]`,
		},
		{
			name:    "garbage instead of HTTP, then recover",
			scripts: []func(*rawConn){answer("HELLO\r\n\r\n"), answer("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"), stream("data: ok\n\n")},
			want:    `[|message|"ok"]`,
		},
		{
			name:    "broken chunked encoding mid-stream, then resume",
			scripts: []func(*rawConn){answer(chunkedHead + chunks("id: 1\ndata: a\n\n") + "zz\r\n"), stream("id: 2\ndata: b\n\n")},
			want:    `[1|message|"a"][2|message|"b"]`,
			ids:     []string{`[]`, `["1"]`, `["2"]`},
		},
		{
			name:    "invalid fields are ignored, invalid UTF-8 replaced",
			scripts: []func(*rawConn){stream("id: 1\ndata: a\n\n", "id: x\x00y\nretry: 1x\nretry\ndata: \xff\xfe!\nunknown: z\ndata\n\n")},
			want:    fmt.Sprintf(`[1|message|"a"][1|message|%q]`, "\uFFFD\uFFFD!\n"),
			ids:     []string{`[]`, `["1"]`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newRawServer(t, tt.scripts...)
			g := run(t, s, nil)
			if g.err != nil {
				t.Fatalf("err = %v, want nil (ended by 204)", g.err)
			}
			if g.String() != tt.want {
				gs, ws := g.String(), tt.want
				if len(gs) > 200 || len(ws) > 200 {
					gs, ws = fmt.Sprintf("%d bytes", len(gs)), fmt.Sprintf("%d bytes", len(ws))
				}
				t.Errorf("events\n got %s\nwant %s", gs, ws)
			}
			if got := s.lastEventIDs(); tt.ids != nil && strings.Join(got, " ") != strings.Join(tt.ids, " ") {
				t.Errorf("Last-Event-ID headers %v, want %v", got, tt.ids)
			}
			if len(s.reqs) != len(tt.scripts)+1 {
				t.Errorf("%d requests, want %d", len(s.reqs), len(tt.scripts)+1)
			}
		})
	}
}

func TestRawRetryChanges(t *testing.T) {
	t.Parallel()
	s := newRawServer(t,
		stream("retry: 150\n\ndata: a\n\n"),
		stream("retry: 40\n\ndata: b\n\n"),
		stream("retry: 80x\n\ndata: c\n\n"), // invalid: 40 stays
	)
	g := run(t, s, &sseclient.Options{InitialDelay: time.Hour})
	if g.err != nil || g.String() != `[|message|"a"][|message|"b"][|message|"c"]` {
		t.Fatalf("got %s, %v", g, g.err)
	}
	// Only lower bounds: the client must not come back sooner than asked.
	for i, want := range []time.Duration{150, 40, 40} {
		if p := s.pause(i); p < want*time.Millisecond {
			t.Errorf("reconnection %d after %v, want at least %dms", i+1, p, want)
		}
	}
}

func TestRawRetryAfter(t *testing.T) {
	for _, status := range []string{"429 Too Many Requests", "503 Service Unavailable"} {
		t.Run(status, func(t *testing.T) {
			t.Parallel()
			s := newRawServer(t,
				answer("HTTP/1.1 "+status+"\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n{\"error\":\"later\"}\n"),
				stream("data: ok\n\n"),
			)
			g := run(t, s, &sseclient.Options{InitialDelay: time.Millisecond})
			if g.err != nil || g.String() != `[|message|"ok"]` {
				t.Fatalf("got %s, %v", g, g.err)
			}
			if p := s.pause(0); p < time.Second {
				t.Errorf("retried after %v, want at least the Retry-After of 1s", p)
			}
			var se *sseclient.StatusError
			if len(g.states) == 0 || !errors.As(g.states[0], &se) || se.Message != "later" || se.RetryAfter != time.Second {
				t.Errorf("OnState errors %v, want the status with its message and Retry-After", g.states)
			}
		})
	}
}

func TestRawStopsForGood(t *testing.T) {
	tests := []struct {
		name    string
		script  func(*rawConn)
		opts    *sseclient.Options
		wantErr string
		status  int
	}{
		{"204", answer("HTTP/1.1 204 No Content\r\n\r\n"), nil, "", 0},
		{"403 with Herald's JSON error", answer("HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: 31\r\n\r\n{\"error\":\"topic not allowed\"}\n\n"), nil, "403 Forbidden: topic not allowed", 403},
		{"not an event stream", answer("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\ndata: x\n\n"), nil, `Content-Type "text/plain"`, 0},
		{"line over the size limit", stream("data: " + strings.Repeat("x", 5000) + "\n\n"), &sseclient.Options{MaxEventSize: 4096}, "event too large", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newRawServer(t, tt.script, stream("data: never\n\n"))
			g := run(t, s, tt.opts)
			if tt.wantErr == "" && g.err != nil || tt.wantErr != "" && (g.err == nil || !strings.Contains(g.err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want %q", g.err, tt.wantErr)
			}
			var se *sseclient.StatusError
			if tt.status != 0 && (!errors.As(g.err, &se) || se.StatusCode != tt.status) {
				t.Errorf("err = %#v, want *StatusError %d", g.err, tt.status)
			}
			if tt.name == "line over the size limit" && !errors.Is(g.err, sse.ErrTooLarge) {
				t.Errorf("err = %v, want sse.ErrTooLarge", g.err)
			}
			if len(g.events) != 0 || len(s.reqs) != 1 {
				t.Errorf("%d events, %d requests; want none and 1", len(g.events), len(s.reqs))
			}
		})
	}
}

func TestRawHeaders(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, stream("data: a\n\n"))
	g := run(t, s, &sseclient.Options{
		InitialDelay: time.Millisecond,
		LastEventID:  "abc-12",
		Header:       http.Header{"Authorization": {"Bearer t0ken"}, "X-Trace": {"1", "2"}},
	})
	if g.err != nil {
		t.Fatal(g.err)
	}
	r := s.reqs[0]
	for k, want := range map[string]string{"Authorization": "Bearer t0ken", "X-Trace": "1,2", "Last-Event-Id": "abc-12", "Accept": "text/event-stream", "Cache-Control": "no-cache"} {
		if got := strings.Join(r.Header.Values(k), ","); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if got := s.reqs[1].Header.Get("Authorization"); got != "Bearer t0ken" {
		t.Errorf("reconnection lost the Authorization header: %q", got)
	}
}

func TestRawUnreachable(t *testing.T) {
	t.Parallel()
	// A port that refuses: listen, note the address, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/"
	ln.Close()
	// The client retries for ever; OnState gives up after three failures.
	var errs []error
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := sseclient.New(url, &sseclient.Options{
		InitialDelay: time.Millisecond,
		OnState: func(st sseclient.State, err error) {
			if st == sseclient.Connecting && err != nil {
				if errs = append(errs, err); len(errs) == 3 {
					cancel()
				}
			}
		},
	})
	for _, err := range c.Events(ctx) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("yielded %v, want context.Canceled", err)
		}
	}
	for _, err := range errs {
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			t.Errorf("OnState error %v, want a dial error", err)
		}
	}
}
