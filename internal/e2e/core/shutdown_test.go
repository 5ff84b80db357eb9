package core_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
)

// TestGracefulShutdownThenResume stops a server with open streams: every
// stream ends cleanly after the events published before, and each client
// resumes on the restarted server: exactly with a durable history
// (--data-dir), with an explicit epoch-changed reset with the in-memory one.
func TestGracefulShutdownThenResume(t *testing.T) {
	for _, durable := range []bool{true, false} {
		t.Run(map[bool]string{true: "data-dir", false: "memory"}[durable], func(t *testing.T) {
			dir := t.TempDir()
			mutate := func(c *config.Server) {
				c.Core.ShutdownTimeout = 5 * time.Second
				if durable {
					c.Broker.DataDir = dir
				}
			}
			c := newClient(t)
			srv := start(t, mutate)
			follows := [][]string{{"a"}, {"b"}, {"a", "b"}}
			var streams []*testkit.Stream
			for _, topics := range follows {
				s := subscribe(t, c, eventsURL(srv.URL, topics...), "")
				s.NextID(t)
				streams = append(streams, s)
			}
			for i := range 6 {
				publish(t, c, srv.URL, fmt.Sprint("before", i), []string{"a", "b"}[i%2])
			}
			lastIDs := make([]string, len(streams))
			for i, s := range streams {
				n := 6
				if len(follows[i]) == 1 {
					n = 3
				}
				for range n {
					lastIDs[i] = s.Next(t).ID
				}
			}

			stopped := make(chan struct{})
			go func() { srv.Stop(); close(stopped) }()
			for i, s := range streams {
				rest, err := s.End(t)
				if err != nil {
					t.Errorf("stream %v: %v, want a clean end", follows[i], err)
				}
				for _, b := range rest {
					if b.HasData {
						t.Errorf("stream %v: unexpected %v after the shutdown began", follows[i], b)
					}
				}
			}
			select {
			case <-stopped:
			case <-time.After(20 * time.Second):
				t.Fatal("server did not stop")
			}

			srv2 := start(t, mutate)
			after := publish(t, c, srv2.URL, "after", "a", "b")
			for i, topics := range follows {
				s := subscribe(t, c, eventsURL(srv2.URL, topics...), lastIDs[i])
				ev := s.Next(t)
				if !durable {
					if ev.Type != "herald.reset" || !strings.Contains(ev.Data, `"epoch-changed"`) {
						t.Errorf("%v after a restart of the memory broker: %v, want an epoch-changed reset", topics, ev)
					}
					ev = s.Next(t)
				}
				if ev.Data != "after" || ev.ID != after {
					t.Errorf("%v resumed with %v, want only the event published after the restart", topics, ev)
				}
			}
		})
	}
}

// TestServeProcessSIGTERM builds the herald binary, runs `herald serve`, and
// sends it SIGTERM while one client reads a stream and another never reads
// (its stream is stuck in a write). The reading stream ends cleanly, and
// the process exits with status 0 within --shutdown-timeout.
func TestServeProcessSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := testkit.BuildHerald(t)
	const shutdownTimeout = 2 * time.Second
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--log-format", "json",
		"--shutdown-timeout", shutdownTimeout.String(), "--write-timeout", "1m", "--publish-rate", "0")
	cmd.Env = append(os.Environ(), "HERALD_LOG_REQUESTS=false")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	logs := make(chan string, 100)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "herald listening" {
				addr <- rec["addr"].(string)
			}
			select {
			case logs <- sc.Text():
			default:
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	})
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-exited:
		t.Fatalf("herald serve exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("herald serve did not log its address")
	}

	c := newClient(t)
	reader := subscribe(t, c, eventsURL(base, "t"), "")
	reader.NextID(t)
	// A client that never reads: its stream blocks in a write.
	stuck, cancelStuck := open(t, c, eventsURL(base, "t"), "")
	defer cancelStuck()
	defer stuck.Body.Close()
	data := strings.Repeat("x", 64<<10)
	for range 100 {
		publish(t, c, base, data, "t")
		reader.Next(t)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.End(t); err != nil {
		t.Errorf("reading stream at SIGTERM: %v, want a clean end", err)
	}
	select {
	case err := <-exited:
		elapsed := time.Since(start)
		if err != nil {
			t.Errorf("herald serve exited with %v, want status 0", err)
		}
		// The stuck stream holds the shutdown until the timeout, not longer
		// (some slack for the process to exit on a busy machine).
		if elapsed > shutdownTimeout+3*time.Second {
			t.Errorf("exit took %v, over --shutdown-timeout %v", elapsed, shutdownTimeout)
		}
		t.Logf("exited %v after SIGTERM", elapsed.Round(time.Millisecond))
	case <-time.After(shutdownTimeout + 20*time.Second):
		t.Fatal("herald serve did not exit after SIGTERM")
	}
	// The stuck client sees its stream end, too.
	stuck.Body.(io.Closer).Close()
	_, err = http.Get(base + "/healthz")
	if err == nil || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("server still answering after exit: %v", err)
	}
}
