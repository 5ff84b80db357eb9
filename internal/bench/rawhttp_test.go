package bench

import (
	"bufio"
	"strings"
	"testing"
)

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		status   int
		keep     bool
		rest     string // what the reader still holds
		bad      bool
	}{
		{"content length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloNEXT", 200, true, "NEXT", false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nNEXT", 200, true, "NEXT", false},
		{"close", "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", 503, false, "", false},
		{"HTTP/1.0, body to the end", "HTTP/1.0 200 OK\r\n\r\nbody", 200, false, "", false},
		{"garbage", "SSH-2.0-OpenSSH\r\n", 0, false, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.in))
			status, keep, err := readResponse(br)
			if tc.bad {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			rest, _ := br.Peek(br.Buffered())
			if err != nil || status != tc.status || keep != tc.keep || string(rest) != tc.rest {
				t.Fatalf("status %d keep %v rest %q err %v", status, keep, rest, err)
			}
		})
	}
}
