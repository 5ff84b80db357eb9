package ws_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/testkit"
	herald "github.com/heraldpush/herald/internal/transport/ws"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

// rawServer serves /ws with a Handler of its own (no app, no policy), for
// tests that speak WebSocket byte by byte.
type rawServer struct {
	hub *hub.Hub
	h   *herald.Handler
	url string
}

func newRawServer(t *testing.T, mutate func(*herald.Handler)) *rawServer {
	t.Helper()
	b := memory.New(&memory.Options{Epoch: "ep"})
	hb := hub.New(b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { hb.Run(ctx); close(done) }()
	h := &herald.Handler{Hub: hb, MaxFrameBytes: 1024}
	if mutate != nil {
		mutate(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		hb.Close()
		h.Close()
		cancel()
		<-done
		b.Close()
	})
	return &rawServer{hub: hb, h: h, url: srv.URL}
}

// rawConn is a client connection that writes frames exactly as a test
// builds them and reads what the server sends.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (s *rawServer) dial(t *testing.T, query string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "GET /ws?" + query + " HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(testkit.Timeout))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	return &rawConn{t: t, c: c, br: br}
}

// cframe builds a client frame: masked unless told otherwise.
func cframe(op ws.OpCode, fin bool, p []byte) ws.Frame {
	return ws.MaskFrame(ws.NewFrame(op, fin, p))
}

func (rc *rawConn) send(frames ...ws.Frame) {
	rc.t.Helper()
	var b []byte
	for _, f := range frames {
		b = append(b, ws.MustCompileFrame(f)...)
	}
	rc.write(b)
}

func (rc *rawConn) write(b []byte) {
	rc.t.Helper()
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// next reads the server's next frame.
func (rc *rawConn) next() (ws.Header, []byte) {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(testkit.Timeout))
	h, err := ws.ReadHeader(rc.br)
	if err != nil {
		rc.t.Fatalf("read a frame header: %v", err)
	}
	if h.Masked {
		rc.t.Fatal("the server masked a frame")
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(rc.br, p); err != nil {
		rc.t.Fatalf("read a payload: %v", err)
	}
	return h, p
}

// text reads frames until a text frame and returns its JSON.
func (rc *rawConn) text() map[string]any {
	rc.t.Helper()
	for {
		h, p := rc.next()
		if h.OpCode == ws.OpClose {
			code, reason := ws.ParseCloseFrameData(p)
			rc.t.Fatalf("closed with %d %q, want a text frame", code, reason)
		}
		if h.OpCode != ws.OpText {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(p, &m); err != nil {
			rc.t.Fatalf("text frame %q: %v", p, err)
		}
		return m
	}
}

// closed reads until the server's close frame, answers it as a client
// does, and returns its code; the server then closes the connection.
func (rc *rawConn) closed() (herald.CloseCode, string) {
	rc.t.Helper()
	for {
		h, p := rc.next()
		if h.OpCode != ws.OpClose {
			continue
		}
		code, reason := ws.ParseCloseFrameData(p)
		rc.send(cframe(ws.OpClose, true, ws.NewCloseFrameBody(code, "")))
		rc.eof()
		return herald.CloseCode(code), reason
	}
}

// eof waits for the server to close the connection.
func (rc *rawConn) eof() {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(testkit.Timeout))
	if _, err := io.Copy(io.Discard, rc.br); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		rc.t.Fatalf("waiting for the server to close: %v", err)
	}
}

func (rc *rawConn) ping(t any) {
	rc.t.Helper()
	b, _ := json.Marshal(map[string]any{"type": "ping", "t": t})
	rc.send(cframe(ws.OpText, true, b))
}

// RFC 6455 as a server must apply it: each case sends frames and expects
// the connection to go on (a pong to a JSON ping sent after them) or to
// close with a code.
func TestRFC6455(t *testing.T) {
	s := newRawServer(t, nil)
	pingJSON := []byte(`{"type":"ping","t":7}`)
	closeBody := func(code ws.StatusCode, reason string) []byte {
		b := make([]byte, 2+len(reason))
		binary.BigEndian.PutUint16(b, uint16(code))
		copy(b[2:], reason)
		return b
	}
	for _, tc := range []struct {
		name   string
		frames []ws.Frame
		raw    []byte           // sent as they are, after frames
		close  herald.CloseCode // 0: the connection goes on
	}{
		{name: "fragmented text", frames: []ws.Frame{
			cframe(ws.OpText, false, pingJSON[:5]), cframe(ws.OpContinuation, false, pingJSON[5:12]), cframe(ws.OpContinuation, true, pingJSON[12:]),
		}},
		{name: "control frames between fragments", frames: []ws.Frame{
			cframe(ws.OpText, false, pingJSON[:5]), cframe(ws.OpPing, true, []byte("hey")), cframe(ws.OpPong, true, nil), cframe(ws.OpContinuation, true, pingJSON[5:]),
		}},
		{name: "UTF-8 sequence split across fragments", frames: []ws.Frame{
			cframe(ws.OpText, false, []byte("{\"type\":\"ping\",\"t\":\"\xc3")), cframe(ws.OpContinuation, true, []byte("\xa9\"}")),
		}},
		{name: "invalid UTF-8", frames: []ws.Frame{cframe(ws.OpText, true, []byte("{\"type\":\"ping\",\"t\":\"\xc3\x28\"}"))}, close: herald.CloseInvalidPayload},
		{name: "invalid UTF-8 across fragments", frames: []ws.Frame{
			cframe(ws.OpText, false, []byte("{\"type\":\"ping\",\"t\":\"\xf0\x9f")), cframe(ws.OpContinuation, true, []byte("\x28\"}")),
		}, close: herald.CloseInvalidPayload},
		{name: "unmasked frame", frames: []ws.Frame{ws.NewTextFrame(pingJSON)}, close: herald.CloseProtocolError},
		{name: "reserved opcode", frames: []ws.Frame{cframe(ws.OpCode(0x3), true, nil)}, close: herald.CloseProtocolError},
		{name: "reserved control opcode", frames: []ws.Frame{cframe(ws.OpCode(0xb), true, nil)}, close: herald.CloseProtocolError},
		{name: "RSV1 without an extension", frames: []ws.Frame{func() ws.Frame {
			f := cframe(ws.OpText, true, pingJSON)
			f.Header.Rsv = ws.Rsv(true, false, false)
			return f
		}()}, close: herald.CloseProtocolError},
		{name: "continuation without a start", frames: []ws.Frame{cframe(ws.OpContinuation, true, pingJSON)}, close: herald.CloseProtocolError},
		{name: "new message inside a fragmented one", frames: []ws.Frame{
			cframe(ws.OpText, false, pingJSON[:5]), cframe(ws.OpText, true, pingJSON),
		}, close: herald.CloseProtocolError},
		{name: "control frame over 125 bytes", frames: []ws.Frame{cframe(ws.OpPing, true, make([]byte, 126))}, close: herald.CloseProtocolError},
		{name: "fragmented control frame", frames: []ws.Frame{cframe(ws.OpPing, false, []byte("a"))}, close: herald.CloseProtocolError},
		{name: "frame over the limit", frames: []ws.Frame{cframe(ws.OpText, true, make([]byte, 1025))}, close: herald.CloseTooBig},
		{name: "message over the limit in fragments", frames: []ws.Frame{
			cframe(ws.OpText, false, make([]byte, 600)), cframe(ws.OpContinuation, true, make([]byte, 600)),
		}, close: herald.CloseTooBig},
		{name: "binary message", frames: []ws.Frame{cframe(ws.OpBinary, true, []byte{1, 2, 3})}},
		{name: "close with a one-byte payload", frames: []ws.Frame{cframe(ws.OpClose, true, []byte{3})}, close: herald.CloseProtocolError},
		{name: "close code not in use", frames: []ws.Frame{cframe(ws.OpClose, true, closeBody(999, ""))}, close: herald.CloseProtocolError},
		{name: "close code reserved (1005)", frames: []ws.Frame{cframe(ws.OpClose, true, closeBody(1005, ""))}, close: herald.CloseProtocolError},
		{name: "close code undefined (1016)", frames: []ws.Frame{cframe(ws.OpClose, true, closeBody(1016, ""))}, close: herald.CloseProtocolError},
		{name: "close reason not UTF-8", frames: []ws.Frame{cframe(ws.OpClose, true, closeBody(1000, "\xff"))}, close: herald.CloseInvalidPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := s.dial(t, "topic=rfc")
			if m := c.text(); m["type"] != "position" {
				t.Fatalf("first frame %v, want the position", m)
			}
			c.send(tc.frames...)
			if tc.close != 0 {
				if code, reason := c.closed(); code != tc.close {
					t.Fatalf("closed with %d %q, want %d", code, reason, tc.close)
				}
				return
			}
			c.ping("after")
			for {
				m := c.text()
				if m["type"] == "pong" && m["t"] == "after" {
					return
				}
			}
		})
	}
}

// A ping is answered with a pong carrying its payload; frames may arrive a
// byte at a time or several in one read.
func TestRFC6455PingAndPartialReads(t *testing.T) {
	s := newRawServer(t, nil)
	c := s.dial(t, "topic=rfc")
	c.text()
	c.send(cframe(ws.OpPing, true, []byte("payload")))
	if h, p := c.next(); h.OpCode != ws.OpPong || string(p) != "payload" {
		t.Fatalf("got %v %q, want a pong with the ping's payload", h.OpCode, p)
	}
	// One byte at a time.
	b := ws.MustCompileFrame(cframe(ws.OpText, true, []byte(`{"type":"ping","t":1}`)))
	for i := range b {
		c.write(b[i : i+1])
	}
	if m := c.text(); m["type"] != "pong" || m["t"] != float64(1) {
		t.Fatalf("got %v, want pong 1", m)
	}
	// Three frames in one write.
	var all []byte
	for i := 2; i <= 4; i++ {
		all = append(all, ws.MustCompileFrame(cframe(ws.OpText, true, []byte(`{"type":"ping","t":`+string(rune('0'+i))+`}`)))...)
	}
	c.write(all)
	for i := 2; i <= 4; i++ {
		if m := c.text(); m["t"] != float64(i) {
			t.Fatalf("got %v, want pong %d", m, i)
		}
	}
}

// The closing handshake both ways: a client's close is echoed with its
// code and the server closes the TCP connection; the server's close
// (here an administrator's disconnect) is answered by the client, and the
// server then closes the connection.
func TestRFC6455ClosingHandshake(t *testing.T) {
	s := newRawServer(t, nil)
	t.Run("client first", func(t *testing.T) {
		c := s.dial(t, "topic=bye")
		c.text()
		c.send(cframe(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusGoingAway, "leaving")))
		h, p := c.next()
		code, _ := ws.ParseCloseFrameData(p)
		if h.OpCode != ws.OpClose || code != ws.StatusGoingAway {
			t.Fatalf("got %v %d, want the close echoed with 1001", h.OpCode, code)
		}
		c.eof()
		testkit.WaitFor(t, "the subscription to close", func() bool { return s.hub.TopicCounts()["bye"] == 0 })
	})
	t.Run("client first, no status", func(t *testing.T) {
		c := s.dial(t, "topic=bye")
		c.text()
		c.send(cframe(ws.OpClose, true, nil))
		if h, p := c.next(); h.OpCode != ws.OpClose || len(p) != 0 {
			t.Fatalf("got %v %q, want an empty close", h.OpCode, p)
		}
		c.eof()
	})
	t.Run("server first", func(t *testing.T) {
		c := s.dial(t, "topic=kick")
		c.text()
		s.hub.Disconnect("kick")
		if code, reason := c.closed(); code != herald.CloseKicked {
			t.Fatalf("closed with %d %q, want %d", code, reason, herald.CloseKicked)
		}
	})
	t.Run("data after the server's close is ignored", func(t *testing.T) {
		c := s.dial(t, "topic=kick2")
		c.text()
		s.hub.Disconnect("kick2")
		for {
			if h, _ := c.next(); h.OpCode == ws.OpClose {
				break
			}
		}
		c.ping("late") // not answered: the server only waits for our close
		c.send(cframe(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
		c.eof()
	})
}

// Events reach a raw client as text frames, in order, and the server's
// ping of an idle connection is answered by the client's pong.
func TestRFC6455EventsAndServerPing(t *testing.T) {
	s := newRawServer(t, func(h *herald.Handler) {
		h.PingInterval = 30 * time.Millisecond
		h.PingTimeout = time.Minute
	})
	c := s.dial(t, "topic=ev")
	c.text()
	for {
		h, p := c.next()
		if h.OpCode == ws.OpPing {
			c.send(cframe(ws.OpPong, true, p))
			break
		}
	}
	for _, d := range []string{"one", "two"} {
		if _, err := s.hub.Publish(context.Background(), &pubsub.Message{Topics: []string{"ev"}, Data: d}); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"one", "two"} {
		if m := c.text(); m["type"] != "event" || m["data"] != want {
			t.Fatalf("got %v, want event %s", m, want)
		}
	}
}
