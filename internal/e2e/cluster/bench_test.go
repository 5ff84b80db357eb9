package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/sse"
)

// BenchmarkPublishDeliver measures publish→deliver through real HTTP on
// each broker, with one node and with three (publishing on the first,
// subscribed on the last): b.N events are published by 8 concurrent
// publishers (POST /publish, JSON); one SSE subscriber receives them.
// It reports deliveries per second and the publish→deliver latency
// (from just before the POST to the event's arrival) at p50 and p99.
//
//	go test -run '^$' -bench PublishDeliver -benchtime 5000x ./internal/e2e/cluster/
func BenchmarkPublishDeliver(b *testing.B) {
	for _, broker := range []string{"memory", "redis", "nats"} {
		for _, nodes := range []int{1, 3} {
			if broker == "memory" && nodes > 1 {
				continue // the memory broker is one process
			}
			b.Run(fmt.Sprintf("broker=%s/nodes=%d", broker, nodes), func(b *testing.B) {
				benchPublishDeliver(b, broker, nodes)
			})
		}
	}
}

func benchPublishDeliver(b *testing.B, broker string, nodes int) {
	mutate := func(cfg *config.Server) {
		cfg.HTTP.PublishRate = 0
		cfg.HTTP.LogRequests = false
	}
	name := strings.ToUpper(pubsub.NewEpoch())
	switch broker {
	case "redis":
		needService(b, "127.0.0.1:6379", "Redis")
		m := mutate
		mutate = func(cfg *config.Server) {
			m(cfg)
			cfg.Broker.URL, cfg.Broker.Prefix = "redis://127.0.0.1:6379/0", "bench-"+name
		}
		b.Cleanup(func() { deleteRedisPrefix(b, "bench-"+name) })
	case "nats":
		needService(b, "127.0.0.1:4222", "NATS")
		m := mutate
		mutate = func(cfg *config.Server) {
			m(cfg)
			cfg.Broker.URL, cfg.Broker.Stream = "nats://127.0.0.1:4222", "BENCH_"+name
		}
		b.Cleanup(func() { deleteNATSStream(b, "BENCH_"+name) })
	}
	var servers []*apptest.Server
	for range nodes {
		servers = append(servers, apptest.Start(b, mutate))
	}
	pub, sub := servers[0], servers[len(servers)-1]

	hist := hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
	var got atomic.Int64
	all := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sub.URL+"/events?topic=bench", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			close(ready)
			return
		}
		defer resp.Body.Close()
		close(ready)
		var mu sync.Mutex
		for ev, err := range sse.Read(resp.Body) {
			if err != nil {
				return
			}
			ns, err := strconv.ParseInt(ev.Data, 10, 64)
			if err != nil {
				continue
			}
			mu.Lock()
			_ = hist.RecordValue(time.Since(time.Unix(0, ns)).Microseconds())
			mu.Unlock()
			if got.Add(1) == int64(b.N) {
				close(all)
			}
		}
	}()
	<-ready

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	const publishers = 8
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range publishers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				body, _ := json.Marshal(map[string]string{"topic": "bench", "data": strconv.FormatInt(time.Now().UnixNano(), 10)})
				resp, err := client.Post(pub.URL+"/publish", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("publish: %d", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-all:
	case <-time.After(time.Minute):
		b.Fatalf("delivered %d of %d events", got.Load(), b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	<-subDone
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(hist.ValueAtQuantile(50)), "p50-µs")
	b.ReportMetric(float64(hist.ValueAtQuantile(99)), "p99-µs")
	b.ReportMetric(0, "ns/op")
}

// needService skips (or, with CI set, fails) when nothing listens at addr.
func needService(b *testing.B, addr, name string) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			b.Fatalf("%s is not reachable at %s (CI is set, so this fails)", name, addr)
		}
		b.Skipf("%s is not reachable at %s and CI is unset: skipping", name, addr)
	}
	c.Close()
}

// deleteRedisPrefix deletes the keys of a broker prefix on the shared Redis.
func deleteRedisPrefix(b *testing.B, prefix string) {
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, "{"+prefix+"}*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		if err := rdb.Del(ctx, keys...).Err(); err != nil {
			b.Logf("cleanup: %v", err)
		}
	}
}

// deleteNATSStream deletes a broker's stream and bucket on the shared NATS.
func deleteNATSStream(b *testing.B, stream string) {
	nc, err := natsgo.Connect("nats://127.0.0.1:4222")
	if err != nil {
		b.Logf("cleanup: %v", err)
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = js.DeleteStream(ctx, stream)
	_ = js.DeleteKeyValue(ctx, stream+"_state")
}
