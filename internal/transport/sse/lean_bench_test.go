package sse_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
)

// BenchmarkLeanFanOut publishes one event per op to a topic followed by N
// subscribers on the lean path, over real loopback TCP, and waits until
// every subscriber has read every event: the hub's queueing, the workers,
// writev and the kernel (readers run in this process too, so the figures
// are for comparing versions, not for sizing). Reported: wall time per
// delivery, allocations per published event (all its deliveries), and the
// server's goroutines per idle subscriber.
func BenchmarkLeanFanOut(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			e := newEnv(b, &hub.Options{QueueBytes: 64 << 20}, nil)
			before := runtime.NumGoroutine()
			var (
				read  atomic.Int64
				wg    sync.WaitGroup
				conns []net.Conn
			)
			for range n {
				c, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
				if err != nil {
					b.Fatal(err)
				}
				conns = append(conns, c)
				io.WriteString(c, "GET /events?topic=bench HTTP/1.1\r\nHost: b\r\n\r\n")
				br := bufio.NewReader(c)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 64<<10)
					for {
						m, err := resp.Body.Read(buf)
						read.Add(int64(m))
						if err != nil {
							return
						}
					}
				}()
			}
			testkit.WaitFor(b, "every subscriber", func() bool { return e.hub.TopicCounts()["bench"] == n })
			// Subscriber goroutines here are the readers'; the server's
			// are what is left once net/http's handshake goroutines exit.
			testkit.WaitFor(b, "the handshakes' goroutines to exit", func() bool { return runtime.NumGoroutine()-before-n <= n/10+8 })
			idle := float64(runtime.NumGoroutine()-before-n) / float64(n)
			data := strings.Repeat("x", 100)
			start := read.Load()
			t0 := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.hub.Publish(context.Background(), &pubsub.Message{Topics: []string{"bench"}, Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			// Each event is "id: ep-<n>\ndata: <100 x>\n\n" in its own
			// chunk or sharing one: wait for at least the event bytes.
			want := start + int64(b.N)*int64(n)*int64(len("id: ep-\ndata: \n\n")+len(data))
			testkit.WaitWithin(b, time.Minute, "every subscriber to read every event", func() bool { return read.Load() >= want })
			// Until the last subscriber read the last event (b.Elapsed
			// stops with the loop, when the events are only queued).
			elapsed := time.Since(t0)
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N*n), "ns/delivery")
			b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "deliveries/s")
			b.ReportMetric(idle, "server-goroutines/sub")
			for _, c := range conns {
				c.Close()
			}
			wg.Wait()
		})
	}
}
