package cluster_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testkit"
	"github.com/nats-io/nats-server/v2/server"
	goredis "github.com/redis/go-redis/v9"
)

// engine is a broker engine the test controls: it can stop it (crash),
// start it again with its data, and make it lose its data.
type engine interface {
	// flags returns the herald flags that use the engine.
	flags() []string
	stop(t *testing.T)
	start(t *testing.T)
	lose(t *testing.T)
}

// TestClusterRedis: three nodes on a Redis of their own.
func TestClusterRedis(t *testing.T) {
	runCluster(t, newRedisEngine(t))
}

// TestClusterNATS: three nodes on a NATS JetStream server of their own
// (nats-server run in the test process, so that it can be restarted).
func TestClusterNATS(t *testing.T) {
	runCluster(t, newNATSEngine(t))
}

// TestClusterRedisShards: the same on two shards (--broker-shards 2): the
// clients follow topics on both, so their ids are vectors.
func TestClusterRedisShards(t *testing.T) {
	anyOrder = true
	t.Cleanup(func() { anyOrder = false })
	runCluster(t, sharded{newRedisEngine(t)})
}

// TestClusterNATSShards: the same on NATS, two streams.
func TestClusterNATSShards(t *testing.T) {
	anyOrder = true
	t.Cleanup(func() { anyOrder = false })
	runCluster(t, sharded{newNATSEngine(t)})
}

// sharded runs an engine's deployment on two shards.
type sharded struct{ engine }

func (s sharded) flags() []string { return append(s.engine.flags(), "--broker-shards", "2") }

// runCluster runs three `herald serve` nodes on the engine: publishes on
// A, subscribers on B and C. It kills B mid-stream (its clients move to C
// with Last-Event-ID), then stops the engine (publishing answers 503),
// starts it again (clients resume exactly), and makes it lose its data
// (clients get herald.reset epoch-changed, then the new history). Every
// client ends with every event exactly once, in order.
func runCluster(t *testing.T, e engine) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	a := startNode(t, "A", e.flags()...)
	b := startNode(t, "B", e.flags()...)
	c := startNode(t, "C", e.flags()...)

	var clients []*client
	for i := range 6 {
		clients = append(clients, newClient(fmt.Sprintf("B%d", i), topicsOf(i), b, c))
		clients = append(clients, newClient(fmt.Sprintf("C%d", i), topicsOf(i), c))
	}
	defer func() {
		for _, cl := range clients {
			cl.stop()
		}
	}()
	// Each client is subscribed (it has its position) before anything is
	// published: from then on it must miss nothing.
	for _, cl := range clients {
		testkit.WaitWithin(t, 20*time.Second, "client "+cl.name+" to connect", func() bool {
			cl.mu.Lock()
			defer cl.mu.Unlock()
			return cl.connects > 0 // subscribed: the answer's headers come after
		})
	}

	// Phase 1: node B dies mid-stream.
	var all []published
	const n1 = 240
	pace := time.NewTicker(2 * time.Millisecond) // spread over the kill
	defer pace.Stop()
	for i := range n1 {
		if i == n1/3 {
			b.kill()
			t.Logf("killed node B after %d events", i)
		}
		all = append(all, publish(t, a, eventData("p1", i), topicsFor(i)...))
		<-pace.C
	}
	check(t, clients, all, "after node B was killed")
	for _, cl := range clients {
		if cl.name[0] != 'B' {
			continue
		}
		cl.mu.Lock()
		fromB, fromC := 0, 0
		for _, ev := range cl.events {
			switch ev.Node {
			case "B":
				fromB++
			case "C":
				fromC++
			}
		}
		cl.mu.Unlock()
		if fromB == 0 || fromC == 0 {
			t.Errorf("client %s: %d events from node B and %d from C; want some from each (it moved mid-stream)", cl.name, fromB, fromC)
		}
	}
	for _, cl := range clients {
		if len(cl.resets()) != 0 {
			t.Errorf("client %s: resets %v, want none", cl.name, cl.resets())
		}
	}

	// Phase 2: the engine is down, then back with its data.
	e.stop(t)
	status, body := post(a, "while down", "news")
	var errBody struct{ Error string }
	if status != http.StatusServiceUnavailable || json.Unmarshal(body, &errBody) != nil || errBody.Error == "" {
		t.Errorf("publish while the broker is down: %d %s, want 503 with a JSON error", status, body)
	}
	e.start(t)
	all = append(all, publishRetrying(t, a, "p2", 60)...)
	check(t, clients, all, "after the broker restarted")
	for _, cl := range clients {
		if len(cl.resets()) != 0 {
			t.Errorf("client %s: resets %v after a restart that kept the data, want none (exact resume)", cl.name, cl.resets())
		}
	}

	// Phase 3: the engine loses its data: a new epoch. Clients must be
	// told (herald.reset epoch-changed), then get the new history.
	e.lose(t)
	fresh := publishRetrying(t, a, "p3", 60)
	for _, cl := range clients {
		cl.waitFor(t, want(fresh, cl.topics), 30*time.Second)
	}
	for _, cl := range clients {
		resets := cl.resets()
		if len(resets) == 0 {
			t.Errorf("client %s: no herald.reset after the broker lost its data", cl.name)
			continue
		}
		for _, r := range resets {
			if r != "epoch-changed" {
				t.Errorf("client %s: reset %q, want epoch-changed", cl.name, r)
			}
		}
		// Before the reset: the old epoch exactly; after it: the new
		// epoch's history exactly.
		cl.mu.Lock()
		var before, after []string
		seenReset := false
		for _, ev := range cl.events {
			switch {
			case ev.Type == "herald.reset":
				seenReset = true
				after = nil // the stream restarts from the new log's start
			case seenReset:
				after = append(after, ev.Data)
			default:
				before = append(before, ev.Data)
			}
		}
		cl.mu.Unlock()
		checkExactly(t, "client "+cl.name+" before the reset", before, want(all, cl.topics))
		checkExactly(t, "client "+cl.name+" after the reset", after, want(fresh, cl.topics))
	}
}

// check waits until every client has all of its events, then checks
// that each has all of them exactly once.
func check(t *testing.T, clients []*client, all []published, when string) {
	t.Helper()
	for _, cl := range clients {
		cl.waitFor(t, want(all, cl.topics), 30*time.Second)
	}
	for _, cl := range clients {
		checkExactly(t, fmt.Sprintf("client %s (%v) %s", cl.name, cl.topics, when), cl.messages(), want(all, cl.topics))
	}
}

// publishRetrying publishes n events to a node, retrying the first while
// the broker comes back (503 with a JSON error, nothing else).
func publishRetrying(t *testing.T, n *node, phase string, count int) []published {
	t.Helper()
	var out []published
	deadline := time.Now().Add(30 * time.Second)
	pace := time.NewTicker(2 * time.Millisecond)
	defer pace.Stop()
	retry := time.NewTicker(100 * time.Millisecond)
	defer retry.Stop()
	for i := 0; i < count; {
		data := eventData(phase, i)
		topics := topicsFor(i)
		status, body := post(n, data, topics...)
		switch status {
		case http.StatusOK:
			var res struct{ ID string }
			if err := json.Unmarshal(body, &res); err != nil {
				t.Fatalf("publish: %s: %v", body, err)
			}
			out = append(out, published{ID: res.ID, Topics: topics, Data: data})
			i++
			<-pace.C
		case http.StatusServiceUnavailable:
			var e struct{ Error string }
			if json.Unmarshal(body, &e) != nil || e.Error == "" {
				t.Fatalf("503 without a JSON error: %s", body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("publishing still fails after 30s: %s", body)
			}
			<-retry.C
		default:
			t.Fatalf("publish %s: %d %s", data, status, body)
		}
	}
	return out
}

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// redisEngine is a redis-server process of the test's own, with an
// append-only file synced on every write (so a crash loses nothing).
type redisEngine struct {
	bin, dir string
	port     int
	cmd      *exec.Cmd
	done     chan struct{}
}

func newRedisEngine(t *testing.T) *redisEngine {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		skipOrFail(t, "redis-server is not installed")
	}
	e := &redisEngine{bin: bin, dir: t.TempDir(), port: freePort(t)}
	e.start(t)
	t.Cleanup(func() { e.kill() })
	return e
}

func (e *redisEngine) flags() []string {
	return []string{"--broker", fmt.Sprintf("redis://127.0.0.1:%d/0", e.port), "--broker-prefix", "cluster"}
}

func (e *redisEngine) start(t *testing.T) {
	t.Helper()
	e.cmd = exec.Command(e.bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(e.port), "--dir", e.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction")
	e.cmd.Stdout, e.cmd.Stderr = nil, nil
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(e.cmd, e.done)
	rdb := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", e.port)})
	defer rdb.Close()
	testkit.WaitFor(t, "redis-server to start", func() bool { return rdb.Ping(t.Context()).Err() == nil })
}

func (e *redisEngine) kill() {
	if e.cmd != nil && e.cmd.Process != nil {
		_ = e.cmd.Process.Signal(syscall.SIGKILL)
		<-e.done
		e.cmd = nil
	}
}

// stop crashes Redis (SIGKILL).
func (e *redisEngine) stop(t *testing.T) { e.kill() }

// lose empties Redis, as FLUSHALL or a restart without persistence does.
func (e *redisEngine) lose(t *testing.T) {
	rdb := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", e.port)})
	defer rdb.Close()
	if err := rdb.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
}

// natsEngine is a nats-server with JetStream run in the test process on a
// port and storage directory of its own.
type natsEngine struct {
	dir  string
	port int
	srv  *server.Server
}

func newNATSEngine(t *testing.T) *natsEngine {
	e := &natsEngine{dir: t.TempDir(), port: freePort(t)}
	e.start(t)
	t.Cleanup(func() { e.stop(t) })
	return e
}

func (e *natsEngine) flags() []string {
	return []string{"--broker", fmt.Sprintf("nats://127.0.0.1:%d", e.port), "--broker-stream", "CLUSTER"}
}

func (e *natsEngine) start(t *testing.T) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: e.port, JetStream: true, StoreDir: e.dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	e.srv = srv
}

func (e *natsEngine) stop(t *testing.T) {
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
		e.srv = nil
	}
}

// lose restarts the server without its storage.
func (e *natsEngine) lose(t *testing.T) {
	e.stop(t)
	if err := os.RemoveAll(filepath.Join(e.dir)); err != nil {
		t.Fatal(err)
	}
	e.start(t)
}
