package streams_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testkit"
)

// call sends one request to a node and returns the status, headers and
// body; a transport error is status 0.
func call(method, url, body string, headers ...string) (int, http.Header, string) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err.Error()
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// sharedBrokers are the brokers two herald processes can share.
func sharedBrokers() []brokerCase {
	var out []brokerCase
	for _, bc := range brokers() {
		switch bc.name {
		case "redis", "nats", "redis-3-shards":
			out = append(out, bc)
		}
	}
	return out
}

// TestAcrossNodes: two herald processes on one broker serve the same
// streams. An append acknowledged by one node is readable at once on the
// other, a long-poll on one returns an append made on the other, a
// producer that moved to a new epoch on one node is fenced on the other,
// concurrent appends on both are each stored once, and a node killed while
// appending loses no append it acknowledged.
func TestAcrossNodes(t *testing.T) {
	for _, bc := range sharedBrokers() {
		t.Run(bc.name, func(t *testing.T) {
			flags := bc.flags(t)
			a := startHerald(t, flags...)
			b := startHerald(t, flags...)
			// /readyz tells each of the streams broker's shards.
			wantShards := 1
			if strings.Contains(bc.name, "3-shards") {
				wantShards = 3
			}
			for _, n := range []*node{a, b} {
				st, _, body := call("GET", n.URL+"/readyz", "")
				var ready struct {
					Streams []struct {
						Shard     int    `json:"shard"`
						Epoch     string `json:"epoch"`
						Available bool   `json:"available"`
					} `json:"streams"`
				}
				if st != 200 || json.Unmarshal([]byte(body), &ready) != nil || len(ready.Streams) != wantShards {
					t.Fatalf("/readyz: %d %s, want %d streams shards", st, body, wantShards)
				}
				for _, sh := range ready.Streams {
					if !sh.Available || sh.Epoch == "" {
						t.Errorf("/readyz: streams shard %d: %+v, want available with an epoch", sh.Shard, sh)
					}
				}
			}
			s := "/v1/stream/cluster"
			if st, _, body := call("PUT", a.URL+s, "", "Content-Type: text/plain"); st != 201 {
				t.Fatalf("create: %d %s", st, body)
			}
			// Read-your-writes across nodes.
			for i := range 20 {
				st, h, _ := call("POST", a.URL+s, fmt.Sprintf("[%d]", i), "Content-Type: text/plain")
				if st != 204 {
					t.Fatalf("append %d: %d", i, st)
				}
				st, h2, body := call("GET", b.URL+s+"?offset=-1", "")
				if st != 200 || !strings.HasSuffix(body, fmt.Sprintf("[%d]", i)) || h2.Get("Stream-Next-Offset") != h.Get("Stream-Next-Offset") {
					t.Fatalf("after append %d on A, B reads %d %q at %s, want it at %s", i, st, body, h2.Get("Stream-Next-Offset"), h.Get("Stream-Next-Offset"))
				}
			}
			// A long-poll on B wakes for an append on A.
			_, h, _ := call("HEAD", b.URL+s, "")
			polled := make(chan string, 1)
			go func() {
				_, _, body := call("GET", b.URL+s+"?live=long-poll&offset="+h.Get("Stream-Next-Offset"), "")
				polled <- body
			}()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
		wait:
			for {
				select {
				case body := <-polled:
					if !strings.HasPrefix(body, "<live>") {
						t.Fatalf("long-poll on B: %q", body)
					}
					break wait
				case <-tick.C:
					call("POST", a.URL+s, "<live>", "Content-Type: text/plain")
				case <-time.After(20 * time.Second):
					t.Fatal("the long-poll on B did not return A's append")
				}
			}
			// Fencing across nodes.
			prod := func(epoch, seq int) []string {
				return []string{"Content-Type: text/plain", "Producer-Id: p", fmt.Sprintf("Producer-Epoch: %d", epoch), fmt.Sprintf("Producer-Seq: %d", seq)}
			}
			if st, _, body := call("POST", a.URL+s, "e0", prod(0, 0)...); st != 200 {
				t.Fatalf("producer epoch 0 on A: %d %s", st, body)
			}
			if st, _, body := call("POST", b.URL+s, "e1", prod(1, 0)...); st != 200 {
				t.Fatalf("producer epoch 1 on B: %d %s", st, body)
			}
			if st, h, _ := call("POST", a.URL+s, "zombie", prod(0, 1)...); st != 403 || h.Get("Producer-Epoch") != "1" {
				t.Fatalf("the old epoch on A: %d %v, want 403 with Producer-Epoch 1", st, h)
			}
			// Concurrent appends on both nodes.
			var wg sync.WaitGroup
			for i := range 40 {
				wg.Go(func() {
					node := a
					if i%2 == 1 {
						node = b
					}
					if st, _, body := call("POST", node.URL+s, fmt.Sprintf("<c%d>", i), "Content-Type: text/plain"); st != 204 {
						t.Errorf("concurrent append %d: %d %s", i, st, body)
					}
				})
			}
			wg.Wait()
			_, _, all := call("GET", a.URL+s, "")
			for i := range 40 {
				if strings.Count(all, fmt.Sprintf("<c%d>", i)) != 1 {
					t.Fatalf("concurrent append %d is not there exactly once", i)
				}
			}
			if strings.Contains(all, "zombie") {
				t.Fatal("the fenced producer's append is in the stream")
			}
			// A node killed mid-append: every append it acknowledged is
			// readable on the other.
			var acked []string
			var mu sync.Mutex
			var stop atomic.Bool
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; !stop.Load(); i++ {
					data := fmt.Sprintf("<k%d>", i)
					if st, _, _ := call("POST", a.URL+s, data, "Content-Type: text/plain"); st == 204 {
						mu.Lock()
						acked = append(acked, data)
						mu.Unlock()
					} else if st == 0 {
						return // A is gone
					}
				}
			}()
			if !testkit.Within(10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 50 }) {
				t.Fatal("node A acknowledged too few appends")
			}
			_ = a.cmd.Process.Signal(syscall.SIGKILL)
			stop.Store(true)
			<-done
			_, _, all = call("GET", b.URL+s, "")
			mu.Lock()
			defer mu.Unlock()
			for _, d := range acked {
				if strings.Count(all, d) != 1 {
					t.Fatalf("append %s, acknowledged by A before it was killed, is not on B exactly once", d)
				}
			}
			t.Logf("%d appends acknowledged by A before SIGKILL, all on B", len(acked))
		})
	}
}
