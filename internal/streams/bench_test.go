package streams_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/internal/streams"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/bolt"
	"github.com/heraldpush/herald/pubsub/memory"
	"github.com/heraldpush/herald/pubsub/nats"
	"github.com/heraldpush/herald/pubsub/redis"
)

// benchBroker opens a broker of kind for b: memory, bolt (--data-dir),
// redis (127.0.0.1:6379) or nats (JetStream at 127.0.0.1:4222), the last
// two under names of their own that are deleted at the end. It skips when
// the server of redis or nats is not reachable (benchmarks do not run in
// CI).
func benchBroker(b *testing.B, kind string) pubsub.Broker {
	ctx := context.Background()
	reachable := func(addr string) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			b.Skipf("%s is not reachable at %s: %v", kind, addr, err)
		}
		c.Close()
	}
	switch kind {
	case "memory":
		return memory.New(nil)
	case "bolt":
		bb, err := bolt.Open(filepath.Join(b.TempDir(), "streams.db"), nil)
		if err != nil {
			b.Fatal(err)
		}
		return bb
	case "redis":
		reachable("127.0.0.1:6379")
		rb, err := redis.Open(ctx, "redis://127.0.0.1:6379/0", &redis.Options{Prefix: "herald-bench-" + pubsub.NewEpoch()})
		if err != nil {
			b.Fatal(err)
		}
		return rb
	case "nats":
		reachable("127.0.0.1:4222")
		name := "HERALD_BENCH_" + strings.ToUpper(pubsub.NewEpoch())
		b.Cleanup(func() {
			nc, err := natsgo.Connect("nats://127.0.0.1:4222")
			if err != nil {
				b.Logf("cleanup: %v", err)
				return
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = js.DeleteStream(ctx, name)
			_ = js.DeleteKeyValue(ctx, name+"_state")
		})
		nb, err := nats.Open(ctx, "nats://127.0.0.1:4222", &nats.Options{Stream: name})
		if err != nil {
			b.Fatal(err)
		}
		return nb
	}
	b.Fatalf("no broker %q", kind)
	return nil
}

// BenchmarkCatchUp reads a 100 MiB stream (appends of 64 KiB or 1 MiB)
// from its start over HTTP, following Stream-Next-Offset until up to
// date, from each kind of streams broker: the embedded stores, memory and
// bolt (--data-dir, read from its memory map: pubsub.TopicStreamer), and
// Redis and NATS JetStream when they run on their usual local ports. MB/s
// is the read rate. The stream is deleted at the end.
func BenchmarkCatchUp(b *testing.B) {
	for _, c := range []struct {
		store string
		size  int
	}{
		{"memory", 64 << 10}, {"memory", 1 << 20}, {"bolt", 64 << 10}, {"bolt", 1 << 20},
		{"redis", 64 << 10}, {"redis", 1 << 20}, {"nats", 64 << 10}, {"nats", 1 << 20},
	} {
		store, size, appends := c.store, c.size, 100<<20/c.size
		b.Run(fmt.Sprintf("%s/append=%dKiB", store, size>>10), func(b *testing.B) {
			if store == "nats" && size >= 1<<20 {
				// The append answers 413: the message with its headers is
				// over NATS's default max_payload (1 MiB).
				b.Skip("a 1 MiB append is over NATS's default max_payload")
			}
			br := benchBroker(b, store)
			defer br.Close()
			if _, err := streams.New(br, streams.Options{}); errors.Is(err, streams.ErrNotConditional) {
				b.Skipf("broker lacks Conditional: %v", err)
			}
			n := newNode(b, br, 0)
			chunk := strings.Repeat("0123456789abcdef", size/16)
			if r := n.do(b, "PUT", "big", "", "Content-Type: application/octet-stream"); r.status != http.StatusCreated {
				b.Fatal(r.status, r.body)
			}
			defer n.do(b, "DELETE", "big", "")
			for range appends {
				if r := n.do(b, "POST", "big", chunk, "Content-Type: application/octet-stream"); r.status != http.StatusNoContent {
					b.Fatal(r.status, r.body)
				}
			}
			b.SetBytes(int64(appends * size))
			b.ResetTimer()
			for b.Loop() {
				total, offset := 0, "-1"
				for {
					resp, err := http.Get(n.url + "big?offset=" + offset)
					if err != nil {
						b.Fatal(err)
					}
					m, err := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != http.StatusOK {
						b.Fatal(resp.StatusCode, err)
					}
					total += int(m)
					offset = resp.Header.Get("Stream-Next-Offset")
					if resp.Header.Get("Stream-Up-To-Date") == "true" {
						break
					}
				}
				if total != appends*size {
					b.Fatalf("read %d bytes, want %d", total, appends*size)
				}
			}
		})
	}
}
