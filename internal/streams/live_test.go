package streams_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/streams"
	"github.com/heraldpush/herald/pubsub/memory"
)

// TestLongPollWakesOnAppend: a long-poll at the tail on one node returns
// the append made on another node sharing the broker, before its timeout.
func TestLongPollWakesOnAppend(t *testing.T) {
	b := memory.New(nil)
	defer b.Close()
	a, c := newNode(t, b, time.Minute), newNode(t, b, time.Minute)
	put := a.do(t, "PUT", "lp", "", "Content-Type: text/plain")
	tail := put.hdr.Get("Stream-Next-Offset")
	got := make(chan reply, 1)
	go func() { got <- c.do(t, "GET", "lp?offset="+tail+"&live=long-poll", "") }()
	// Append until the poll answers: it may not be waiting yet.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case r := <-got:
			if r.status != http.StatusOK || !strings.HasPrefix(r.body, "x") || r.hdr.Get("Stream-Cursor") == "" {
				t.Fatalf("long-poll: %d %q %v", r.status, r.body, r.hdr)
			}
			return
		case <-tick.C:
			a.do(t, "POST", "lp", "x", "Content-Type: text/plain")
		case <-deadline:
			t.Fatal("the long-poll did not return an append made on another node")
		}
	}
}

// TestLongPollTimeout: with nothing appended, a long-poll answers 204 with
// the tail, up to date, and a cursor.
func TestLongPollTimeout(t *testing.T) {
	n := newNode(t, nil, 50*time.Millisecond)
	tail := n.do(t, "PUT", "lt", "", "Content-Type: text/plain").hdr.Get("Stream-Next-Offset")
	r := n.do(t, "GET", "lt?offset=now&live=long-poll", "")
	if r.status != http.StatusNoContent || r.hdr.Get("Stream-Next-Offset") != tail || r.hdr.Get("Stream-Up-To-Date") != "true" || r.hdr.Get("Stream-Cursor") == "" {
		t.Fatalf("%d %v", r.status, r.hdr)
	}
}

// sseEvent is one event of an SSE read.
type sseEvent struct{ typ, data string }

// readSSE reads events from an SSE read until stop says so or the stream
// ends.
func readSSE(t *testing.T, url string, stop func([]sseEvent) bool) ([]sseEvent, *http.Response) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var evs []sseEvent
	var cur sseEvent
	var data []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.typ != "" {
				cur.data = strings.Join(data, "\n")
				evs = append(evs, cur)
				if stop(evs) {
					return evs, resp
				}
			}
			cur, data = sseEvent{}, nil
		case strings.HasPrefix(line, "event: "):
			cur.typ = line[len("event: "):]
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(line[len("data:"):], " "))
		}
	}
	return evs, resp
}

// control is an SSE control event's data.
type control struct {
	Next     string `json:"streamNextOffset"`
	Cursor   string `json:"streamCursor"`
	UpToDate bool   `json:"upToDate"`
	Closed   bool   `json:"streamClosed"`
}

// TestSSE: an SSE read gets the catch-up data, each data event followed by
// a control event, then live appends, then the close, after which the
// stream ends.
func TestSSE(t *testing.T) {
	n := newNode(t, nil, 0)
	n.do(t, "PUT", "e", "one\ntwo", "Content-Type: text/plain")
	done := make(chan []sseEvent, 1)
	caught := make(chan struct{})
	go func() {
		evs, resp := readSSE(t, n.url+"e?offset=-1&live=sse", func(evs []sseEvent) bool {
			if ev := evs[len(evs)-1]; ev.typ == "control" && strings.Contains(ev.data, `"upToDate":true`) && len(evs) == 2 {
				close(caught) // the catch-up is over: what comes next is live
			}
			return false
		})
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("Content-Type %q", ct)
		}
		done <- evs
	}()
	select {
	case <-caught:
	case <-time.After(10 * time.Second):
		t.Fatal("no up-to-date control event after the catch-up")
	}
	for i := range 3 {
		n.do(t, "POST", "e", fmt.Sprintf(" live%d", i), "Content-Type: text/plain")
	}
	n.do(t, "POST", "e", "", "Stream-Closed: true")
	var evs []sseEvent
	select {
	case evs = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the SSE read did not end with the stream's close")
	}
	var text strings.Builder
	var last control
	for i, ev := range evs {
		switch ev.typ {
		case "data":
			if i+1 >= len(evs) || evs[i+1].typ != "control" {
				t.Fatalf("data event %d not followed by a control event: %v", i, evs)
			}
			text.WriteString(ev.data)
		case "control":
			last = control{}
			if err := json.Unmarshal([]byte(ev.data), &last); err != nil {
				t.Fatalf("control %q: %v", ev.data, err)
			}
		}
	}
	if want := "one\ntwo live0 live1 live2"; text.String() != want {
		t.Fatalf("data %q, want %q", text.String(), want)
	}
	if !last.Closed || last.Cursor != "" {
		t.Fatalf("last control %+v, want closed without a cursor", last)
	}
}

// TestSSEBinaryIsBase64: a binary stream's data events are base64.
func TestSSEBinaryIsBase64(t *testing.T) {
	n := newNode(t, nil, 0)
	n.do(t, "PUT", "bin", "\x00\n\xff", "Content-Type: application/octet-stream")
	evs, resp := readSSE(t, n.url+"bin?offset=-1&live=sse", func(evs []sseEvent) bool { return evs[len(evs)-1].typ == "control" })
	if resp.Header.Get("Stream-SSE-Data-Encoding") != "base64" || len(evs) != 2 || evs[0].data != "AAr/" {
		t.Fatalf("%v %v", resp.Header, evs)
	}
}

// TestProducerFencedAcrossNodes: a producer that moved to a new epoch on
// one node fences its old epoch on another node, and two nodes appending
// concurrently lose and duplicate nothing.
func TestProducerFencedAcrossNodes(t *testing.T) {
	b := memory.New(nil)
	defer b.Close()
	a, c := newNode(t, b, 0), newNode(t, b, 0)
	a.do(t, "PUT", "f", "", "Content-Type: text/plain")
	prod := func(epoch, seq int) []string {
		return []string{"Content-Type: text/plain", "Producer-Id: p", fmt.Sprintf("Producer-Epoch: %d", epoch), fmt.Sprintf("Producer-Seq: %d", seq)}
	}
	if r := a.do(t, "POST", "f", "a", prod(0, 0)...); r.status != http.StatusOK {
		t.Fatal(r.status, r.body)
	}
	// Node A knows epoch 0; the producer restarts with epoch 1 on node C.
	if r := c.do(t, "POST", "f", "b", prod(1, 0)...); r.status != http.StatusOK {
		t.Fatal(r.status, r.body)
	}
	if r := a.do(t, "POST", "f", "zombie", prod(0, 1)...); r.status != http.StatusForbidden || r.hdr.Get("Producer-Epoch") != "1" {
		t.Fatalf("zombie on the other node: %d %v", r.status, r.hdr)
	}
	// The retry of (1, 0) on node A is a duplicate, not a second append.
	if r := a.do(t, "POST", "f", "b", prod(1, 0)...); r.status != http.StatusNoContent {
		t.Fatalf("retry on the other node: %d", r.status)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			node := a
			if i%2 == 1 {
				node = c
			}
			if r := node.do(t, "POST", "f", fmt.Sprintf("<%d>", i), "Content-Type: text/plain"); r.status != http.StatusNoContent {
				t.Errorf("append %d: %d %s", i, r.status, r.body)
			}
		})
	}
	wg.Wait()
	body := c.do(t, "GET", "f", "").body
	for i := range 20 {
		if strings.Count(body, fmt.Sprintf("<%d>", i)) != 1 {
			t.Fatalf("append %d not exactly once in %q", i, body)
		}
	}
	if !strings.HasPrefix(body, "ab") || strings.Contains(body, "zombie") {
		t.Fatalf("body %q", body)
	}
}

// TestSSEMaxAge: an SSE read of an open stream ends cleanly after
// SSEMaxAge, its last control event holding the offset to reconnect from.
func TestSSEMaxAge(t *testing.T) {
	n := newNode(t, nil, 0, func(h *streams.Handler) { h.SSEMaxAge = 200 * time.Millisecond })
	tail := n.do(t, "PUT", "age", "x", "Content-Type: text/plain").hdr.Get("Stream-Next-Offset")
	ended := make(chan []sseEvent, 1)
	go func() {
		evs, _ := readSSE(t, n.url+"age?offset=-1&live=sse", func([]sseEvent) bool { return false })
		ended <- evs
	}()
	select {
	case evs := <-ended:
		var c control
		if len(evs) == 0 || evs[len(evs)-1].typ != "control" || json.Unmarshal([]byte(evs[len(evs)-1].data), &c) != nil || c.Next != tail || c.Closed {
			t.Fatalf("events %v, want the last control at %s", evs, tail)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the SSE read was not ended after SSEMaxAge")
	}
}
