package ws_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
)

// BenchmarkFanout publishes one event per iteration to a topic followed by
// n WebSocket clients on loopback and waits until every client has read it.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			srv := apptest.Start(b, func(c *config.Server) { c.HTTP.MaxConnectionsPerIP = 10 * n })
			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			goroutines := runtime.NumGoroutine()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			reads := make(chan struct{}, n)
			conns := make([]*websocket.Conn, n)
			for i := range conns {
				c, _, err := websocket.Dial(ctx, wsURL(srv, "topic=bench"), nil)
				if err != nil {
					b.Fatal(err)
				}
				conns[i] = c
				if _, _, err := c.Read(ctx); err != nil { // position
					b.Fatal(err)
				}
				go func() {
					for {
						if _, _, err := c.Read(ctx); err != nil {
							return
						}
						reads <- struct{}{}
					}
				}()
			}
			var after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&after)
			// Client and server are in this process: both ends count.
			heap := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
			perConn := float64(runtime.NumGoroutine()-goroutines) / float64(n)
			start := time.Now()
			for b.Loop() {
				publish(b, srv, `{"topic":"bench","data":"0123456789abcdef0123456789abcdef"}`)
				for range n {
					<-reads
				}
			}
			b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "deliveries/s")
			b.ReportMetric(heap, "heap-bytes/conn-both-ends")
			b.ReportMetric(perConn, "goroutines/conn-both-ends")
			for _, c := range conns {
				c.CloseNow()
			}
		})
	}
}
