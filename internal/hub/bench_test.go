package hub_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
	"github.com/heraldpush/herald/sse"
)

// benchKey keys the benchmarks' encoding in hub.Event.Memo.
type benchKey struct{}

// encodeOnce encodes ev as a transport does: once per event, shared by
// every subscriber (an SSE event, as the SSE transport writes it).
func encodeOnce(ev *hub.Event) []byte {
	return ev.Memo(benchKey{}, func() []byte {
		var e sse.Event
		switch ev.Kind {
		case hub.KindMessage:
			e = sse.Event{ID: ev.ID(), Type: ev.Msg.Type, Data: ev.Msg.Data}
		case hub.KindPosition:
			e = sse.Event{ID: ev.ID()}
		default:
			e = sse.Event{Type: hub.ResetEventType, Data: ev.Reset.Reason}
		}
		b, _ := e.AppendTo(nil)
		return b
	})
}

// BenchmarkFanOut publishes one event per op to a topic with 1k and 10k
// local subscribers. A publish returns once the event is queued for every
// subscriber (the hub has no goroutine per subscriber); a few consumers pop
// the queues meanwhile, as transports do. Reported: deliveries/s, ns per
// delivery on the publish path, and the memory of one idle subscription.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			e := newEnv(b, pubsub.Retention{MaxEvents: 100}, &hub.Options{QueueBytes: 64 << 20})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			goroutines := runtime.NumGoroutine()
			subs := make([]*hub.Subscription, n)
			for i := range subs {
				s, err := e.hub.Subscribe(context.Background(), hub.Request{Topics: []string{"t"}})
				if err != nil {
					b.Fatal(err)
				}
				subs[i] = s
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			heapPerSub := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
			goroutinesPerSub := float64(runtime.NumGoroutine()-goroutines) / float64(n)

			// Consumers: each pops a share of the subscriptions.
			var (
				delivered atomic.Int64
				stop      atomic.Bool
				wg        sync.WaitGroup
			)
			const consumers = 4
			for c := range consumers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var buf []*hub.Event
					for !stop.Load() {
						for i := c; i < n; i += consumers {
							buf, _ = subs[i].Pop(buf[:0])
							for _, ev := range buf {
								_ = encodeOnce(ev)
							}
							delivered.Add(int64(len(buf)))
						}
						runtime.Gosched()
					}
				}()
			}
			m := &pubsub.Message{Topics: []string{"t"}, Type: "tick", Data: strings.Repeat("x", 100)}
			b.ReportAllocs()
			for b.Loop() {
				msg := *m
				if _, err := e.hub.Publish(context.Background(), &msg); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := b.Elapsed()
			stop.Store(true)
			wg.Wait()
			// Reported after the loop: b.Loop drops metrics reported before.
			b.ReportMetric(heapPerSub, "heap-B/sub")
			b.ReportMetric(goroutinesPerSub, "goroutines/sub")
			b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "deliveries/s")
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N*n), "ns/delivery")
			for _, s := range subs {
				if err := s.Err(); err != nil {
					b.Fatalf("a subscriber ended: %v", err)
				}
				s.Close()
			}
		})
	}
}

// BenchmarkReplay resumes a subscriber 10k events behind: one op is a
// Subscribe whose prelude replays 10k events, their SSE encoding, and Close.
func BenchmarkReplay(b *testing.B) {
	const events = 10_000
	for _, topics := range [][]string{{"a"}, {"a", "b"}} {
		b.Run(fmt.Sprintf("topics=%d", len(topics)), func(b *testing.B) {
			mb := memory.New(&memory.Options{Epoch: "bench"})
			defer mb.Close()
			for i := range events {
				m := &pubsub.Message{Topics: []string{[]string{"a", "b"}[i%2]}, Data: strings.Repeat("y", 100)}
				if _, err := mb.Publish(context.Background(), m); err != nil {
					b.Fatal(err)
				}
			}
			h := hub.New(mb, nil)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- h.Run(ctx) }()
			defer func() { cancel(); <-done }()
			want := events / 2 * len(topics)
			var buf []*hub.Event
			b.ReportAllocs()
			for b.Loop() {
				s, err := h.Subscribe(context.Background(), hub.Request{Topics: topics, LastEventID: "bench-0"})
				if err != nil {
					b.Fatal(err)
				}
				buf, _ = s.Pop(buf[:0])
				replayed := 0
				for _, ev := range buf {
					_ = encodeOnce(ev)
					if ev.Kind == hub.KindMessage {
						replayed++
					}
				}
				if replayed != want {
					b.Fatalf("replayed %d events, want %d", replayed, want)
				}
				s.Close()
			}
			b.ReportMetric(float64(b.N*want)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
