package core_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/logtest"
	"github.com/heraldpush/herald/internal/testkit"
)

// startRedis runs a redis-server of the test's own on a free port and
// returns its port and a function that kills it (by its PID).
func startRedis(t *testing.T) (int, func()) {
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
	kill := sync.OnceFunc(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	})
	t.Cleanup(kill)
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	defer rdb.Close()
	testkit.WaitFor(t, "redis-server to answer", func() bool { return rdb.Ping(context.Background()).Err() == nil })
	return port, kill
}

// TestOutageLogs: with the broker down, a hundred refused subscriptions and
// a hundred refused publishes make a line per kind of failure, not a line
// each, and are counted in /metrics.
func TestOutageLogs(t *testing.T) {
	port, kill := startRedis(t)
	rec := logtest.New()
	// After the server closes: go-redis's dial prober notices the closed
	// pool within a second.
	t.Cleanup(func() {
		testkit.WaitFor(t, "go-redis's dial prober to end", func() bool {
			buf := make([]byte, 1<<20)
			return !bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("ConnPool).tryDial"))
		})
	})
	srv := apptest.StartLogger(t, rec.Logger(), func(c *config.Server) {
		c.Broker.URL = "redis://127.0.0.1:" + strconv.Itoa(port) + "/0"
		c.HTTP.PublishRate = 0
		c.HTTP.LogRequests = true
	})
	c := newClient(t)
	publish(t, c, srv.URL, "before", "news")
	kill()

	const n = 100
	var wg sync.WaitGroup
	statuses := make(chan int, 2*n)
	for g := range 10 {
		wg.Go(func() {
			for i := range n / 10 {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, eventsURL(srv.URL, "news"), nil)
				if resp, err := c.Do(req); err == nil {
					statuses <- resp.StatusCode
					resp.Body.Close()
				}
				cancel()
				body := fmt.Sprintf(`{"topic":"news","data":"%d-%d"}`, g, i)
				status, _, _ := post(t, c, srv.URL+"/publish", "application/json", body)
				statuses <- status
			}
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusServiceUnavailable {
			t.Fatalf("a request with Redis down answered %d, want 503", s)
		}
	}
	lines := rec.Messages(slog.LevelWarn)
	t.Logf("%d requests refused, %d lines at WARN and above: %q", 2*n, len(lines), lines)
	count := func(s string) int {
		k := 0
		for _, l := range lines {
			if strings.Contains(l, s) {
				k++
			}
		}
		return k
	}
	if count("subscriptions refused: broker unavailable") != 1 || count("publishes refused: broker unavailable") != 1 {
		t.Errorf("want one line for each kind of failure; logged at WARN and above:\n%s", strings.Join(lines, "\n"))
	}
	if len(lines) > 10 {
		t.Errorf("%d lines at WARN and above for %d refused requests:\n%s", len(lines), 2*n, strings.Join(lines, "\n"))
	}
	m := metrics(t, c, srv.URL)
	for op, want := range map[string]string{"subscribe": "100", "publish": "100"} {
		if got := metricValue(m, `herald_failures_total{cause="broker_unavailable",op="`+op+`"}`); got != want {
			t.Errorf("herald_failures_total %s = %q, want %s", op, got, want)
		}
	}
}
