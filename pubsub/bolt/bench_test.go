package bolt_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/bolt"
)

var benchData = strings.Repeat("x", 256)

// BenchmarkPublish: one publisher at a time, so every publish waits for its
// own fsync: the latency floor of a durable publish.
func BenchmarkPublish(b *testing.B) {
	br := openT(b, filepath.Join(b.TempDir(), "herald.db"), bolt.Options{Retention: pubsub.Retention{MaxEvents: 1000}})
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, err := br.Publish(ctx, &pubsub.Message{Topics: []string{fmt.Sprint("t", i%100)}, Data: benchData}); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkPublishParallel: many concurrent publishers share each commit
// (group commit), as concurrent HTTP publishes do.
func BenchmarkPublishParallel(b *testing.B) {
	for _, publishers := range []int{16, 256} {
		b.Run(fmt.Sprint("publishers=", publishers), func(b *testing.B) {
			br := openT(b, filepath.Join(b.TempDir(), "herald.db"), bolt.Options{Retention: pubsub.Retention{MaxEvents: 1000}})
			ctx := context.Background()
			// RunParallel starts parallelism × GOMAXPROCS goroutines.
			b.SetParallelism(max(1, publishers/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := br.Publish(ctx, &pubsub.Message{Topics: []string{fmt.Sprint("t", i%100)}, Data: benchData}); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkReplay: a resuming client's snapshot of 10k messages, read from
// disk (the hub then sends them).
func BenchmarkReplay(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint("events=", n), func(b *testing.B) {
			br := openT(b, filepath.Join(b.TempDir(), "herald.db"), bolt.Options{MaxBatch: 1000})
			ctx := context.Background()
			errc := make(chan error, n)
			for i := range n {
				go func() {
					_, err := br.Publish(ctx, &pubsub.Message{Topics: []string{"replay", fmt.Sprint("o", i%10)}, Data: benchData})
					errc <- err
				}()
			}
			for range n {
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
			}
			q := pubsub.Query{Topics: []string{"replay"}, After: &pubsub.Position{Epoch: br.Epoch()}}
			for b.Loop() {
				snap, err := br.Read(ctx, q)
				if err != nil || len(snap.Events) != n {
					b.Fatalf("Read: %d events, %v", len(snap.Events), err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkReadTopic: a catch-up read of a 100 MiB topic (Durable Streams'
// GET from an offset) in pages, through pubsub.Conditional.ReadTopic, for
// small, medium and large appends. It reports MB/s of message data, and
// MB per CPU-second of the process.
func BenchmarkReadTopic(b *testing.B) {
	const total = 100 << 20
	for _, tc := range []struct {
		size, page int
	}{{1 << 10, 1000}, {64 << 10, 64}, {1 << 20, 8}} {
		b.Run(fmt.Sprintf("size=%d", tc.size), func(b *testing.B) {
			br := openT(b, filepath.Join(b.TempDir(), "herald.db"), bolt.Options{})
			ctx := context.Background()
			data := strings.Repeat("\x00\xffdata", tc.size/6+1)[:tc.size]
			n := total / tc.size
			errc := make(chan error, 1000)
			sem := make(chan struct{}, 1000)
			go func() {
				for range n {
					sem <- struct{}{}
					go func() {
						_, err := br.Publish(ctx, &pubsub.Message{Topics: []string{"stream"}, Data: data})
						<-sem
						errc <- err
					}()
				}
			}()
			for range n {
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(n * tc.size))
			cpu := cpuTime()
			for b.Loop() {
				after, got := pubsub.Position{}, 0
				for {
					msgs, _, err := br.ReadTopic(ctx, "stream", after, tc.page)
					if err != nil {
						b.Fatal(err)
					}
					if len(msgs) == 0 {
						break
					}
					got += len(msgs)
					after = msgs[len(msgs)-1].Pos
				}
				if got != n {
					b.Fatalf("read %d messages, want %d", got, n)
				}
			}
			// On a machine shared with other work the wall-clock MB/s
			// falls with the load; MB per second of the process's CPU
			// (garbage collection included) does not.
			if used := cpuTime() - cpu; used > 0 {
				b.ReportMetric(float64(b.N)*float64(n*tc.size)/1e6/used.Seconds(), "MB/cpu-s")
			}
		})
	}
}
