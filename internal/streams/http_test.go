package streams_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// step is one request of a scenario and what it must get. In path,
// headers and want, "{name}" stands for the Stream-Next-Offset a previous
// step saved under name.
type step struct {
	method, path, send string
	headers            []string
	status             int
	want               *string           // nil: not checked
	hdr                map[string]string // "" value: the header must be absent
	save               string
}

func str(s string) *string { return &s }

// TestProtocol runs the protocol's rules as scenarios over real HTTP.
func TestProtocol(t *testing.T) {
	binary := string([]byte{0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, '\r', '\n'})
	cases := []struct {
		name  string
		steps []step
	}{
		{"create, append, read, head", []step{
			{method: "PUT", path: "s", send: "hello", headers: []string{"Content-Type: text/plain"}, status: 201, save: "c",
				hdr: map[string]string{"Content-Type": "text/plain", "X-Content-Type-Options": "nosniff"}},
			{method: "PUT", path: "s", headers: []string{"Content-Type: TEXT/PLAIN"}, status: 200},
			{method: "PUT", path: "s", headers: []string{"Content-Type: application/json"}, status: 409},
			{method: "POST", path: "s", send: " world", headers: []string{"Content-Type: text/plain"}, status: 204, save: "a"},
			{method: "GET", path: "s", status: 200, want: str("hello world"), hdr: map[string]string{"Stream-Up-To-Date": "true", "Stream-Next-Offset": "{a}"}},
			{method: "GET", path: "s?offset={c}", status: 200, want: str(" world")},
			{method: "GET", path: "s?offset=now", status: 200, want: str(""), hdr: map[string]string{"Stream-Next-Offset": "{a}", "Cache-Control": "no-store"}},
			{method: "HEAD", path: "s", status: 200, hdr: map[string]string{"Stream-Next-Offset": "{a}", "Cache-Control": "no-store", "Stream-Closed": ""}},
			{method: "POST", path: "s", send: "{}", headers: []string{"Content-Type: application/json"}, status: 409},
			{method: "POST", path: "s", send: "x", status: 400},
			{method: "POST", path: "s", headers: []string{"Content-Type: text/plain"}, status: 400},
			{method: "POST", path: "nope", send: "x", headers: []string{"Content-Type: text/plain"}, status: 404},
			{method: "PATCH", path: "s", status: 405},
		}},
		{"binary bytes round-trip", []step{
			{method: "PUT", path: "b", send: binary, headers: []string{"Content-Type: application/octet-stream"}, status: 201},
			{method: "POST", path: "b", send: binary, headers: []string{"Content-Type: application/octet-stream"}, status: 204},
			{method: "GET", path: "b", status: 200, want: str(binary + binary)},
		}},
		{"offsets", []step{
			{method: "PUT", path: "o", send: "a", headers: []string{"Content-Type: text/plain"}, status: 201, save: "c"},
			{method: "GET", path: "o?offset=0,1", status: 400},
			{method: "GET", path: "o?offset=", status: 400},
			{method: "GET", path: "o?offset=a&offset=b", status: 400},
			{method: "GET", path: "o?offset=0000000000000000ff_zzzzzzzzzz", status: 410},
			{method: "GET", path: "o?offset=0000000000000000_0000000000000000", status: 200, want: str("a")},
			{method: "GET", path: "o?offset=-1", status: 200, want: str("a")},
			{method: "GET", path: "o?live=long-poll", status: 400},
			{method: "GET", path: "o?offset=-1&live=bogus", status: 400},
		}},
		{"idempotent producers", []step{
			{method: "PUT", path: "p", headers: []string{"Content-Type: text/plain"}, status: 201},
			{method: "POST", path: "p", send: "a", headers: []string{"Content-Type: text/plain", "Producer-Id: w", "Producer-Epoch: 0", "Producer-Seq: 0"}, status: 200,
				hdr: map[string]string{"Producer-Epoch": "0", "Producer-Seq": "0"}},
			{method: "POST", path: "p", send: "a", headers: []string{"Content-Type: text/plain", "Producer-Id: w", "Producer-Epoch: 0", "Producer-Seq: 0"}, status: 204},
			{method: "POST", path: "p", send: "c", headers: []string{"Content-Type: text/plain", "Producer-Id: w", "Producer-Epoch: 0", "Producer-Seq: 2"}, status: 409,
				hdr: map[string]string{"Producer-Expected-Seq": "1", "Producer-Received-Seq": "2"}},
			{method: "POST", path: "p", send: "b", headers: []string{"Content-Type: text/plain", "Producer-Id: w", "Producer-Epoch: 0", "Producer-Seq: 1"}, status: 200},
			{method: "POST", path: "p", send: "x", headers: []string{"Content-Type: text/plain", "Producer-Id: w", "Producer-Epoch: 1", "Producer-Seq: 3"}, status: 400},
			{method: "POST", path: "p", send: "d", headers: []string{"Content-Type: text/plain", "Producer-Id: w", "Producer-Epoch: 1", "Producer-Seq: 0"}, status: 200},
			{method: "POST", path: "p", send: "z", headers: []string{"Content-Type: text/plain", "Producer-Id: w", "Producer-Epoch: 0", "Producer-Seq: 2"}, status: 403,
				hdr: map[string]string{"Producer-Epoch": "1"}},
			{method: "POST", path: "p", send: "z", headers: []string{"Content-Type: text/plain", "Producer-Id: w", "Producer-Epoch: 01", "Producer-Seq: 0"}, status: 400},
			{method: "POST", path: "p", send: "z", headers: []string{"Content-Type: text/plain", "Producer-Id: w"}, status: 400},
			{method: "GET", path: "p", status: 200, want: str("abd")},
		}},
		{"Stream-Seq is compared as text", []step{
			{method: "PUT", path: "q", headers: []string{"Content-Type: text/plain"}, status: 201},
			{method: "POST", path: "q", send: "a", headers: []string{"Content-Type: text/plain", "Stream-Seq: 2"}, status: 204},
			{method: "POST", path: "q", send: "b", headers: []string{"Content-Type: text/plain", "Stream-Seq: 10"}, status: 409},
			{method: "POST", path: "q", send: "b", headers: []string{"Content-Type: text/plain", "Stream-Seq: 3"}, status: 204},
		}},
		{"close", []step{
			{method: "PUT", path: "k", send: "a", headers: []string{"Content-Type: text/plain"}, status: 201},
			{method: "POST", path: "k", send: "z", headers: []string{"Content-Type: text/plain", "Stream-Closed: true"}, status: 204, save: "end",
				hdr: map[string]string{"Stream-Closed": "true"}},
			{method: "POST", path: "k", headers: []string{"Stream-Closed: true"}, status: 204, hdr: map[string]string{"Stream-Next-Offset": "{end}"}},
			{method: "POST", path: "k", send: "late", headers: []string{"Content-Type: text/plain"}, status: 409,
				hdr: map[string]string{"Stream-Closed": "true", "Stream-Next-Offset": "{end}"}},
			{method: "GET", path: "k", status: 200, want: str("az"), hdr: map[string]string{"Stream-Closed": "true"}},
			{method: "GET", path: "k?offset={end}&live=long-poll", status: 204, hdr: map[string]string{"Stream-Closed": "true"}},
			{method: "HEAD", path: "k", status: 200, hdr: map[string]string{"Stream-Closed": "true"}},
		}},
		{"JSON mode", []step{
			{method: "PUT", path: "j", send: "[]", headers: []string{"Content-Type: application/json"}, status: 201},
			{method: "GET", path: "j", status: 200, want: str("[]")},
			{method: "POST", path: "j", send: `{"a": 1}`, headers: []string{"Content-Type: application/json"}, status: 204},
			{method: "POST", path: "j", send: `[{"b":2},[3,4]]`, headers: []string{"Content-Type: application/json"}, status: 204},
			{method: "POST", path: "j", send: `[]`, headers: []string{"Content-Type: application/json"}, status: 400},
			{method: "POST", path: "j", send: `{bad`, headers: []string{"Content-Type: application/json"}, status: 400},
			{method: "GET", path: "j", status: 200, want: str(`[{"a":1},{"b":2},[3,4]]`)},
			{method: "GET", path: "j?offset=now", status: 200, want: str(`[]`)},
		}},
		{"TTL and expiry headers", []step{
			{method: "PUT", path: "t", headers: []string{"Stream-TTL: 3600"}, status: 201},
			{method: "HEAD", path: "t", status: 200, hdr: map[string]string{"Stream-TTL": "3600", "Content-Type": "application/octet-stream"}},
			{method: "PUT", path: "t", headers: []string{"Stream-TTL: 60"}, status: 409},
			{method: "PUT", path: "t2", headers: []string{"Stream-TTL: 060"}, status: 400},
			{method: "PUT", path: "t2", headers: []string{"Stream-TTL: 1", "Stream-Expires-At: 2030-01-01T00:00:00Z"}, status: 400},
			{method: "PUT", path: "t2", headers: []string{"Stream-Expires-At: tomorrow"}, status: 400},
			{method: "PUT", path: "t3", headers: []string{"Stream-Expires-At: 2000-01-01T00:00:00Z"}, status: 201},
			{method: "HEAD", path: "t3", status: 404},
		}},
		{"delete and re-create", []step{
			{method: "PUT", path: "d", send: "old", headers: []string{"Content-Type: text/plain"}, status: 201, save: "old"},
			{method: "DELETE", path: "d", status: 204},
			{method: "DELETE", path: "d", status: 404},
			{method: "GET", path: "d", status: 404},
			{method: "PUT", path: "d", send: "new", headers: []string{"Content-Type: text/plain"}, status: 201},
			{method: "GET", path: "d", status: 200, want: str("new")},
			{method: "GET", path: "d?offset={old}", status: 410},
		}},
		{"forks", []step{
			{method: "PUT", path: "src", send: "ab", headers: []string{"Content-Type: text/plain"}, status: 201, save: "s1"},
			{method: "POST", path: "src", send: "cd", headers: []string{"Content-Type: text/plain"}, status: 204},
			{method: "PUT", path: "f", headers: []string{"Stream-Forked-From: /v1/stream/src", "Stream-Fork-Offset: {s1}", "Stream-Fork-Sub-Offset: 0"}, status: 201},
			{method: "POST", path: "f", send: "X", headers: []string{"Content-Type: text/plain"}, status: 204},
			{method: "GET", path: "f?offset=-1", status: 200, want: str("abX"), hdr: map[string]string{"Stream-Up-To-Date": "true"}},
			{method: "PUT", path: "g", headers: []string{"Stream-Forked-From: /v1/stream/src", "Stream-Fork-Offset: {s1}", "Stream-Fork-Sub-Offset: 1"}, status: 201},
			{method: "GET", path: "g", status: 200, want: str("abc")},
			{method: "PUT", path: "h", headers: []string{"Stream-Forked-From: /v1/stream/src", "Stream-Fork-Offset: {s1}", "Stream-Fork-Sub-Offset: 9"}, status: 400},
			{method: "PUT", path: "h", headers: []string{"Stream-Forked-From: /v1/stream/none"}, status: 404},
			{method: "DELETE", path: "src", status: 204},
			{method: "HEAD", path: "src", status: 410},
			{method: "PUT", path: "src", headers: []string{"Content-Type: text/plain"}, status: 409},
			{method: "GET", path: "f", status: 200, want: str("abX")},
			{method: "DELETE", path: "f", status: 204},
			{method: "DELETE", path: "g", status: 204},
			{method: "HEAD", path: "src", status: 404},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := newNode(t, nil, 0)
			vars := map[string]string{}
			expand := func(s string) string {
				for k, v := range vars {
					s = strings.ReplaceAll(s, "{"+k+"}", v)
				}
				return s
			}
			for i, s := range c.steps {
				hdrs := make([]string, len(s.headers))
				for j, h := range s.headers {
					hdrs[j] = expand(h)
				}
				got := n.do(t, s.method, expand(s.path), s.send, hdrs...)
				where := fmt.Sprintf("step %d (%s %s)", i, s.method, expand(s.path))
				if got.status != s.status {
					t.Fatalf("%s: status %d, want %d: %s", where, got.status, s.status, got.body)
				}
				if s.want != nil && got.body != *s.want {
					t.Fatalf("%s: body %q, want %q", where, got.body, *s.want)
				}
				for k, v := range s.hdr {
					if g := got.hdr.Get(k); g != expand(v) {
						t.Fatalf("%s: %s %q, want %q", where, k, g, expand(v))
					}
				}
				if got.status >= 400 && !strings.HasPrefix(got.hdr.Get("Content-Type"), "application/json") {
					t.Fatalf("%s: error without a JSON body: %q %q", where, got.hdr.Get("Content-Type"), got.body)
				}
				if s.save != "" {
					vars[s.save] = got.hdr.Get("Stream-Next-Offset")
				}
			}
		})
	}
}

// TestOffsetsSortAsText: offsets that later appends get sort after the
// earlier ones as plain strings, past the point where decimal positions
// would not (9 → 10, 15 → 16 digits of hex).
func TestOffsetsSortAsText(t *testing.T) {
	n := newNode(t, nil, 0)
	if got := n.do(t, "PUT", "m", "", "Content-Type: text/plain"); got.status != http.StatusCreated {
		t.Fatal(got.status)
	}
	prev := ""
	for i := range 40 {
		got := n.do(t, "POST", "m", fmt.Sprint(i), "Content-Type: text/plain")
		off := got.hdr.Get("Stream-Next-Offset")
		if got.status != http.StatusNoContent || off <= prev {
			t.Fatalf("append %d: %d, offset %q after %q", i, got.status, off, prev)
		}
		prev = off
	}
}
