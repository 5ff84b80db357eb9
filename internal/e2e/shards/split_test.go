package shards_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
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
	sb, err := shard.New(context.Background(), shards, nil)
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

// TestMeasureBrokerCost measures, on a redis-server of its own, the broker
// CPU per event of Herald's batch and single publishes against the
// plainest append, XADD pipelined, same payload, same run (issue 22, item
// 5). CPU is the server's main thread's (INFO cpu, from getrusage: to the
// microsecond). The XADD and batch measurements alternate for
// HERALD_MEASURE_ROUNDS rounds (default 4), each reporting its ratio, so
// that a loaded machine's swings hit both; then INFO commandstats tells
// what each command cost per event in the last batch round; then single
// publishes, and batches at the byte bound (5,000 topics, history held to
// 4 MiB: the sweeper evicts as much as the batches bring, and its work is
// counted). It only reports: run it with HERALD_MEASURE=1.
func TestMeasureBrokerCost(t *testing.T) {
	if os.Getenv("HERALD_MEASURE") == "" {
		t.Skip("a measurement: set HERALD_MEASURE=1 to run it")
	}
	const events = 20000
	rounds := 4
	if v, err := strconv.Atoi(os.Getenv("HERALD_MEASURE_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	s := startRedis(t)
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", s.port)
	b, err := redisbroker.Open(context.Background(), url, &redisbroker.Options{Prefix: "cost", Retention: pubsub.Retention{MaxEvents: 1000, MaxAge: time.Hour, MaxBytes: 256 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data := strings.Repeat("x", 100)
	rdb := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.port)})
	defer rdb.Close()
	measure := func(name string, stats bool, run func()) float64 {
		c0 := mainThreadCPU(t, rdb)
		st0 := commandStats(t, rdb)
		start := time.Now()
		run()
		c1 := mainThreadCPU(t, rdb)
		st1 := commandStats(t, rdb)
		per := float64((c1 - c0).Nanoseconds()) / 1000 / events
		t.Logf("%-30s %6.2f µs broker CPU per event (%v wall for %d)", name, per, time.Since(start).Round(time.Millisecond), events)
		if stats {
			logCommandStats(t, st0, st1, events)
		}
		return per
	}
	plain := func() {
		for i := 0; i < events; i += 100 {
			p := rdb.Pipeline()
			for j := range 100 {
				p.XAdd(context.Background(), &goredis.XAddArgs{Stream: "plain", Values: []any{"m", data + strconv.Itoa(i+j)}})
			}
			if _, err := p.Exec(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	batches := func() {
		for i := 0; i < events; i += 100 {
			batch := make([]*pubsub.Message, 100)
			for j := range batch {
				batch[j] = &pubsub.Message{Topics: []string{fmt.Sprint("t", j)}, Data: data}
			}
			if n, err := b.PublishBatch(context.Background(), batch); err != nil || n != len(batch) {
				t.Fatal(n, err)
			}
		}
	}
	var ratios []float64
	var xadd float64
	for r := range rounds {
		xadd = measure("XADD pipelined (100 a batch)", false, plain)
		batch := measure("Herald batch (100, 100 topics)", r == rounds-1, batches)
		ratios = append(ratios, batch/xadd)
		t.Logf("round %d: batch / XADD = %.1f×", r+1, batch/xadd)
	}
	sort.Float64s(ratios)
	t.Logf("batch / XADD over %d rounds: min %.1f×, median %.1f×, max %.1f×", rounds, ratios[0], ratios[len(ratios)/2], ratios[len(ratios)-1])
	single := measure("Herald single publishes", true, func() {
		for i := range events {
			if _, err := b.Publish(context.Background(), &pubsub.Message{Topics: []string{fmt.Sprint("t", i%100)}, Data: data}); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Logf("single / XADD (last round's) = %.1f×", single/xadd)

	// At the byte bound: history held to 4 MiB, so that every batch goes
	// over it and the sweeper (once a second) evicts about as much as the
	// batches bring; its work is counted (the measurement waits until it
	// has brought history back under the bound).
	const bound = 4 << 20
	bb, err := redisbroker.Open(context.Background(), url, &redisbroker.Options{Prefix: "cost-bytes", Retention: pubsub.Retention{MaxEvents: 1000, MaxAge: time.Hour, MaxBytes: bound}})
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()
	bytesHeld := func() int64 {
		n, _ := rdb.HGet(context.Background(), "{cost-bytes}:v2:meta", "bytes").Int64()
		return n
	}
	publishBound := func() {
		for i := 0; i < events; i += 100 {
			batch := make([]*pubsub.Message, 100)
			for j := range batch {
				batch[j] = &pubsub.Message{Topics: []string{fmt.Sprint("b", (i+j)%5000)}, Data: data}
			}
			if n, err := bb.PublishBatch(context.Background(), batch); err != nil || n != len(batch) {
				t.Fatal(n, err)
			}
		}
	}
	atBound := func() {
		publishBound()
		testkit.WaitFor(t, "history back under the byte bound", func() bool { return bytesHeld() <= bound })
	}
	for bytesHeld() < bound {
		publishBound() // fill it first
	}
	for r := range rounds {
		xadd := measure("XADD pipelined (100 a batch)", false, plain)
		got := measure("Herald batch at the byte bound", r == rounds-1, atBound)
		t.Logf("byte bound, round %d: batch / XADD = %.1f×", r+1, got/xadd)
	}
}

// mainThreadCPU returns the CPU time of the server's main thread so far
// (INFO cpu: used_cpu_user_main_thread + used_cpu_sys_main_thread).
func mainThreadCPU(t *testing.T, rdb *goredis.Client) time.Duration {
	t.Helper()
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		t.Fatal(err)
	}
	var sec float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_user_main_thread" || k == "used_cpu_sys_main_thread" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("INFO cpu: %s: %v", line, err)
			}
			sec += f
		}
	}
	if sec == 0 {
		t.Fatal("INFO cpu has no main thread figures (Redis < 6.2?)")
	}
	return time.Duration(sec * float64(time.Second))
}

// cmdStat is one line of INFO commandstats: calls and microseconds.
type cmdStat struct {
	calls int64
	usec  int64
}

// commandStats reads INFO commandstats.
func commandStats(t *testing.T, rdb *goredis.Client) map[string]cmdStat {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]cmdStat{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, found := strings.CutPrefix(name, "cmdstat_")
		if !ok || !found {
			continue
		}
		var st cmdStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls":
				st.calls, _ = strconv.ParseInt(v, 10, 64)
			case "usec":
				st.usec, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		out[name] = st
	}
	return out
}

// logCommandStats logs, per command run between two readings, its calls
// and its microseconds per event (commands run by scripts are counted
// too, and also inside their evalsha).
func logCommandStats(t *testing.T, before, after map[string]cmdStat, events int) {
	t.Helper()
	names := make([]string, 0, len(after))
	for name := range after {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		d := cmdStat{after[name].calls - before[name].calls, after[name].usec - before[name].usec}
		if d.calls == 0 || name == "info" {
			continue
		}
		t.Logf("    %-12s %8d calls %6.2f per event %6.2f µs per event %7.2f µs per call", name, d.calls, float64(d.calls)/float64(events), float64(d.usec)/float64(events), float64(d.usec)/float64(d.calls))
	}
}
