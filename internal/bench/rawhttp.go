package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawPublisher sends publish requests over one kept-alive HTTP/1.1
// connection, written and parsed by hand. net/http's client costs the load
// generator about as much CPU per request as the server under test spends
// (two goroutines per connection, a channel hand-off each way, header maps,
// form encoding); on a two-core machine that halves the request rate the
// benchmark can measure. It is used for cleartext servers; https ones get
// net/http's client.
type rawPublisher struct {
	addr string // host:port
	host string // Host header
	c    net.Conn
	br   *bufio.Reader
	req  []byte
}

func newRawPublisher(server string) (*rawPublisher, bool) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "http" {
		return nil, false
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &rawPublisher{addr: addr, host: u.Host}, true
}

func (p *rawPublisher) close() {
	if p.c != nil {
		p.c.Close()
		p.c = nil
	}
}

// publish POSTs body to /publish and returns the response status. A broken
// connection is dialled again on the next call.
func (p *rawPublisher) publish(ctx context.Context, contentType string, body []byte) (int, error) {
	if p.c == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", p.addr)
		if err != nil {
			return 0, err
		}
		p.c, p.br = c, bufio.NewReaderSize(c, 4096)
	}
	p.req = append(p.req[:0], "POST /publish HTTP/1.1\r\nHost: "...)
	p.req = append(p.req, p.host...)
	p.req = append(p.req, "\r\nContent-Type: "...)
	p.req = append(p.req, contentType...)
	p.req = append(p.req, "\r\nContent-Length: "...)
	p.req = strconv.AppendInt(p.req, int64(len(body)), 10)
	p.req = append(p.req, "\r\n\r\n"...)
	p.req = append(p.req, body...)
	_ = p.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := p.c.Write(p.req); err != nil {
		p.close()
		return 0, err
	}
	status, keep, err := readResponse(p.br)
	if err != nil || !keep {
		p.close()
	}
	return status, err
}

var errBadResponse = errors.New("malformed HTTP response")

// readResponse reads one response, discarding its body. keep reports
// whether the connection may carry another request.
func readResponse(br *bufio.Reader) (status int, keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, errBadResponse
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, errBadResponse
	}
	keep = line[7] == '1'
	length, chunked := -1, false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return status, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return status, false, errBadResponse
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil {
				return status, false, errBadResponse
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			if bytes.EqualFold(v, []byte("close")) {
				keep = false
			}
		}
	}
	switch {
	case chunked:
		for {
			line, err = br.ReadSlice('\n')
			if err != nil {
				return status, false, err
			}
			size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
			n, err := strconv.ParseInt(string(size), 16, 64)
			if err != nil {
				return status, false, errBadResponse
			}
			if _, err := br.Discard(int(n) + 2); err != nil {
				return status, false, err
			}
			if n == 0 {
				return status, keep, nil
			}
		}
	case length >= 0:
		_, err = br.Discard(length)
		return status, keep && err == nil, err
	}
	// A body up to the connection's end.
	_, err = io.Copy(io.Discard, br)
	if err != nil {
		return status, false, fmt.Errorf("reading the body: %w", err)
	}
	return status, false, nil
}
