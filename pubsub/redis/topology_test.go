package redis_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
	"github.com/heraldpush/herald/pubsub/redis"
)

// redisServer returns the redis-server binary, or skips (fails with CI).
func redisServer(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed (CI is set, so this fails)")
		}
		t.Skip("redis-server is not installed and CI is unset: skipping")
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProcess starts a redis-server of the test's own (killed by PID when
// the test ends) and waits until it answers PING.
func startProcess(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(redisServer(t), args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	})
}

func waitPing(t *testing.T, port int) {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	defer rdb.Close()
	testkit.WaitFor(t, fmt.Sprintf("redis on port %d to answer a PING", port), func() bool {
		return rdb.Ping(context.Background()).Err() == nil
	})
}

// TestSentinel: a broker opened with a Sentinel URL finds the master through
// the sentinel and works.
func TestSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server processes")
	}
	dir := t.TempDir()
	mport, sport := freePort(t), freePort(t)
	startProcess(t, "--bind", "127.0.0.1", "--port", strconv.Itoa(mport), "--dir", dir, "--save", "", "--appendonly", "no")
	waitPing(t, mport)
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "bind 127.0.0.1\nport %d\ndir %s\nsentinel monitor mymaster 127.0.0.1 %d 1\n", sport, dir, mport), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, conf, "--sentinel")
	waitPing(t, sport)

	url := fmt.Sprintf("redis://127.0.0.1:%d/0?master_name=mymaster", sport)
	b, err := redis.Open(context.Background(), url, &redis.Options{Prefix: "sentinel"})
	if err != nil {
		t.Fatalf("Open(%s): %v", url, err)
	}
	defer b.Close()
	h := pubsubtest.NewListener()
	pubsubtest.Listen(t, b, h)
	h.Settle(t)
	m := &pubsub.Message{Topics: []string{"s"}, Data: "through the sentinel"}
	if _, err := b.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	h.Wait(t, "the message", func() bool { return len(h.Messages()) == 1 && h.Messages()[0].Data == m.Data })
	snap, err := b.Read(context.Background(), pubsub.Query{Topics: []string{"s"}, After: &pubsub.Position{Epoch: b.Epoch()}})
	if err != nil || len(snap.Events) != 1 {
		t.Fatalf("Read: %d events, %v", len(snap.Events), err)
	}
	// The data is on the master.
	rdb := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:" + strconv.Itoa(mport)})
	defer rdb.Close()
	if n, err := rdb.Exists(context.Background(), "{sentinel}:v2:meta").Result(); err != nil || n != 1 {
		t.Fatalf("meta key on the master: %d, %v", n, err)
	}
}

// TestCluster runs the conformance suite on a three-master Redis Cluster:
// every key of a deployment shares one hash slot, which the scripts need.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server processes")
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-cli is not installed (CI is set, so this fails)")
		}
		t.Skip("redis-cli is not installed and CI is unset: skipping")
	}
	var addrs []string
	for i := range 3 {
		port := freePort(t)
		dir := filepath.Join(t.TempDir(), strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		startProcess(t, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir, "--save", "", "--appendonly", "no",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"), "--cluster-node-timeout", "2000")
		waitPing(t, port)
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(port))
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// Every node must see the cluster as up: each converges on its own.
	for _, addr := range addrs {
		rdb := goredis.NewClient(&goredis.Options{Addr: addr})
		var info string
		ok := testkit.Within(time.Minute, func() bool {
			info, _ = rdb.ClusterInfo(context.Background()).Result()
			return strings.Contains(info, "cluster_state:ok")
		})
		rdb.Close()
		if !ok {
			t.Fatalf("cluster not ready on %s: %s", addr, info)
		}
	}
	url := "redis://" + addrs[0] + "?cluster=true&addr=" + addrs[1] + "&addr=" + addrs[2]
	openCluster := func(t *testing.T, prefix string, r pubsub.Retention) *redis.Broker {
		// CLUSTERDOWN: a slot's owner is still being agreed on; Open
		// again until it is.
		var b *redis.Broker
		var err error
		testkit.Within(testkit.Timeout, func() bool {
			b, err = redis.Open(context.Background(), url, &redis.Options{Prefix: prefix, Retention: r, SweepInterval: 50 * time.Millisecond})
			return err == nil || !strings.Contains(err.Error(), "CLUSTERDOWN")
		})
		if err != nil {
			t.Fatalf("Open(%s): %v", url, err)
		}
		return b
	}
	names := map[pubsub.Broker]string{}
	pubsubtest.Run(t, func(t *testing.T, r pubsub.Retention) pubsub.Broker {
		p := "cluster-" + pubsub.NewEpoch()
		b := openCluster(t, p, r)
		names[b] = p
		return b
	}, &pubsubtest.Options{
		Peer:   func(t *testing.T, b pubsub.Broker) pubsub.Broker { return openCluster(t, names[b], pubsub.Retention{}) },
		Reopen: func(t *testing.T, b pubsub.Broker) pubsub.Broker { return openCluster(t, names[b], pubsub.Retention{}) },
	})
}
