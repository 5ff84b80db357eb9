package shards_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	natsbroker "github.com/heraldpush/herald/pubsub/nats"
)

// cpuOf returns a process's CPU time so far: the sum over its threads of
// /proc/<pid>/task/<tid>/schedstat (nanoseconds on a CPU), or where that
// is missing /proc/<pid>/stat (user + system, in 10 ms ticks). A thread
// that exited drops out of the sum: the servers measured keep theirs.
func cpuOf(t *testing.T, pid int) time.Duration {
	t.Helper()
	if tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid)); err == nil {
		var sum time.Duration
		for _, task := range tasks {
			ss, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
			if err != nil {
				continue // exited meanwhile
			}
			if f := strings.Fields(string(ss)); len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				sum += time.Duration(ns)
			}
		}
		if sum > 0 {
			return sum
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("reading the CPU time of process %d: %v", pid, err)
	}
	f := strings.Fields(string(stat)[strings.LastIndexByte(string(stat), ')')+1:])
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// startNATS starts a nats-server of the test's own with JetStream (file
// storage in a temporary directory) on a free loopback port, and returns
// its URL and process id. HERALD_NATS_SERVER names another nats-server
// binary (to compare server versions).
func startNATS(t *testing.T) (string, int) {
	t.Helper()
	name := "nats-server"
	if v := os.Getenv("HERALD_NATS_SERVER"); v != "" {
		name = v
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("nats-server is not installed (CI is set, so this fails)")
		}
		t.Skip("nats-server is not installed and CI is unset: skipping")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	})
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	up := testkit.Within(10*time.Second, func() bool {
		nc, err := natsgo.Connect(url)
		if err != nil {
			return false
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false
		}
		_, err = js.AccountInfo(context.Background())
		return err == nil
	})
	if !up {
		t.Fatal("nats-server did not answer with JetStream within 10s")
	}
	return url, cmd.Process.Pid
}

// TestMeasureNATSCost measures, on a nats-server of its own (CPU from
// /proc/<pid>/stat), the broker CPU per event of Herald's batch and single
// publishes against the plainest append, JetStream async publishes to a
// file-storage stream, same payload, same run (issue 22, item 5). It only
// reports: run it with HERALD_MEASURE=1.
func TestMeasureNATSCost(t *testing.T) {
	if os.Getenv("HERALD_MEASURE") == "" {
		t.Skip("a measurement: set HERALD_MEASURE=1 to run it")
	}
	const events = 20000
	url, pid := startNATS(t)
	ctx := context.Background()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PLAIN", Subjects: []string{"plain.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	b, err := natsbroker.Open(ctx, url, &natsbroker.Options{Stream: "COST", Retention: pubsub.Retention{MaxEvents: 1000, MaxAge: time.Hour, MaxBytes: 256 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data := strings.Repeat("x", 100)
	measure := func(name string, run func()) {
		c0 := cpuOf(t, pid)
		start := time.Now()
		run()
		c1 := cpuOf(t, pid)
		t.Logf("%-34s %6.1f µs broker CPU per event (%v wall for %d)", name, float64((c1-c0).Microseconds())/events, time.Since(start).Round(time.Millisecond), events)
	}
	measure("JetStream async publish (100 a batch)", func() {
		for i := 0; i < events; i += 100 {
			for j := range 100 {
				if _, err := js.PublishAsync(fmt.Sprint("plain.t", j), []byte(data+strconv.Itoa(i+j))); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				t.Fatal("async publishes not acknowledged within 30s")
			}
		}
	})
	measure("Herald batch (100, 100 topics)", func() {
		for i := 0; i < events; i += 100 {
			batch := make([]*pubsub.Message, 100)
			for j := range batch {
				batch[j] = &pubsub.Message{Topics: []string{fmt.Sprint("t", j)}, Data: data}
			}
			if n, err := b.PublishBatch(ctx, batch); err != nil || n != len(batch) {
				t.Fatal(n, err)
			}
		}
	})
	measure("Herald single publishes", func() {
		for i := range events {
			if _, err := b.Publish(ctx, &pubsub.Message{Topics: []string{fmt.Sprint("t", i%100)}, Data: data}); err != nil {
				t.Fatal(err)
			}
		}
	})
}
