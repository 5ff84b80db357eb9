package shards_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	redisbroker "github.com/heraldpush/herald/pubsub/redis"
	"github.com/heraldpush/herald/pubsub/shard"
)

// redisServer is a redis-server process of the test's own.
type redisServer struct {
	port int
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed (CI is set, so this fails)")
		}
		t.Skip("redis-server is not installed and CI is unset: skipping")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	})
	rdb := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer rdb.Close()
	testkit.WaitFor(t, "redis-server to answer a PING", func() bool { return rdb.Ping(context.Background()).Err() == nil })
	return &redisServer{port: port, cmd: cmd}
}

// calls returns how many times the server ran the publish script, and its
// CPU time so far (from /proc/<pid>/stat).
func (r *redisServer) calls(t *testing.T) (int, time.Duration) {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port)})
	defer rdb.Close()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:calls="); ok {
			n, _ = strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.cmd.Process.Pid))
	if err != nil {
		return n, 0
	}
	f := strings.Fields(string(stat)[strings.LastIndexByte(string(stat), ')')+1:])
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return n, time.Duration(ut+st) * 10 * time.Millisecond
}

// TestSpreadOverRedisServers: with 4 shards on 4 Redis servers (--broker
// repeated), topics spread evenly put 1/4 of the publishes on each server
// (±20 %).
func TestSpreadOverRedisServers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const n, events = 4, 2000
	servers := make([]*redisServer, n)
	shards := make([]pubsub.Broker, n)
	for k := range n {
		servers[k] = startRedis(t)
		p := "spread"
		if k > 0 {
			p += "#" + strconv.Itoa(k)
		}
		b, err := redisbroker.Open(context.Background(), fmt.Sprintf("redis://127.0.0.1:%d/0", servers[k].port), &redisbroker.Options{Prefix: p})
		if err != nil {
			t.Fatal(err)
		}
		shards[k] = b
	}
	sb, err := shard.New(context.Background(), shards)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	before := make([]int, n)
	cpu0 := make([]time.Duration, n)
	for k, s := range servers {
		before[k], cpu0[k] = s.calls(t)
	}
	for i := range events {
		if _, err := sb.Publish(context.Background(), &pubsub.Message{Topics: []string{fmt.Sprint("topic-", i%400)}, Data: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	for k, s := range servers {
		calls, cpu := s.calls(t)
		got := calls - before[k]
		t.Logf("server %d: %d publishes, %v CPU", k, got, cpu-cpu0[k])
		if got < events/n*8/10 || got > events/n*12/10 {
			t.Errorf("server %d ran %d of %d publishes, want %d ±20%%", k, got, events, events/n)
		}
	}
}

// TestMeasureBrokerCost measures, on a redis-server of its own (CPU from
// /proc/<pid>/stat), the broker CPU per event of Herald's batch and single
// publishes against the plainest append, XADD pipelined, same payload, same
// run (issue 22, item 5). It only reports: run it with HERALD_MEASURE=1.
func TestMeasureBrokerCost(t *testing.T) {
	if os.Getenv("HERALD_MEASURE") == "" {
		t.Skip("a measurement: set HERALD_MEASURE=1 to run it")
	}
	const events = 20000
	s := startRedis(t)
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", s.port)
	b, err := redisbroker.Open(context.Background(), url, &redisbroker.Options{Prefix: "cost", Retention: pubsub.Retention{MaxEvents: 1000, MaxAge: time.Hour, MaxBytes: 256 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data := strings.Repeat("x", 100)
	measure := func(name string, run func()) {
		_, c0 := s.calls(t)
		start := time.Now()
		run()
		_, c1 := s.calls(t)
		t.Logf("%-28s %6.1f µs broker CPU per event (%v wall for %d)", name, float64((c1-c0).Microseconds())/events, time.Since(start).Round(time.Millisecond), events)
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.port)})
	defer rdb.Close()
	measure("XADD pipelined (100 a batch)", func() {
		for i := 0; i < events; i += 100 {
			p := rdb.Pipeline()
			for j := range 100 {
				p.XAdd(context.Background(), &goredis.XAddArgs{Stream: "plain", Values: []any{"m", data + strconv.Itoa(i+j)}})
			}
			if _, err := p.Exec(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	})
	measure("Herald batch (100, 100 topics)", func() {
		// The Redis broker has no batch script yet: the hub publishes a
		// batch's messages one script call each, 8 at a time as 8
		// publishers would.
		for i := 0; i < events; i += 100 {
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for j := w; j < 100; j += 8 {
						if _, err := b.Publish(context.Background(), &pubsub.Message{Topics: []string{fmt.Sprint("t", j)}, Data: data}); err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
		}
	})
	measure("Herald single publishes", func() {
		for i := range events {
			if _, err := b.Publish(context.Background(), &pubsub.Message{Topics: []string{fmt.Sprint("t", i%100)}, Data: data}); err != nil {
				t.Fatal(err)
			}
		}
	})
}
