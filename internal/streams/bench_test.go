package streams_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/streams"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/bolt"
	"github.com/heraldpush/herald/pubsub/memory"
)

// BenchmarkCatchUp reads a 100 MiB stream (appends of 64 KiB or 1 MiB)
// from its start over HTTP, following Stream-Next-Offset until up to
// date, from the embedded stores: memory and bolt (--data-dir). MB/s is
// the read rate.
func BenchmarkCatchUp(b *testing.B) {
	for _, c := range []struct {
		store string
		size  int
	}{{"memory", 64 << 10}, {"memory", 1 << 20}, {"bolt", 64 << 10}, {"bolt", 1 << 20}} {
		store, size, appends := c.store, c.size, 100<<20/c.size
		b.Run(fmt.Sprintf("%s/append=%dKiB", store, size>>10), func(b *testing.B) {
			var br pubsub.Broker
			switch store {
			case "memory":
				br = memory.New(nil)
			case "bolt":
				bb, err := bolt.Open(filepath.Join(b.TempDir(), "streams.db"), nil)
				if err != nil {
					b.Fatal(err)
				}
				br = bb
			}
			defer br.Close()
			if _, err := streams.New(br, streams.Options{}); errors.Is(err, streams.ErrNotConditional) {
				b.Skipf("broker lacks Conditional: %v", err)
			}
			n := newNode(b, br, 0)
			chunk := strings.Repeat("0123456789abcdef", size/16)
			if r := n.do(b, "PUT", "big", "", "Content-Type: application/octet-stream"); r.status != http.StatusCreated {
				b.Fatal(r.status, r.body)
			}
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
