package mercure_test

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	goredis "github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/pubsub"
)

// need skips the test when a service is absent, unless CI is set.
func need(t *testing.T, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not reachable at %s (CI is set, so this fails): %v", name, addr, err)
	}
	t.Skipf("%s is not reachable at %s and CI is unset: skipping (%v)", name, addr, err)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// redisBroker configures nodes on a Redis key prefix of their own.
func redisBroker(t *testing.T) func(*config.Server) {
	addr := envOr("HERALD_TEST_REDIS", "127.0.0.1:6379")
	need(t, "Redis", addr)
	prefix := "herald-mercure-test-" + pubsub.NewEpoch()
	t.Cleanup(func() {
		rdb := goredis.NewClient(&goredis.Options{Addr: addr})
		defer rdb.Close()
		ctx := context.Background()
		var keys []string
		iter := rdb.Scan(ctx, 0, "{"+prefix+"}*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return func(c *config.Server) {
		c.Broker.URL = "redis://" + addr + "/0"
		c.Broker.Prefix = prefix
	}
}

// natsBroker configures nodes on a JetStream stream of their own.
func natsBroker(t *testing.T) func(*config.Server) {
	url := envOr("HERALD_TEST_NATS", "nats://127.0.0.1:4222")
	need(t, "NATS", strings.TrimPrefix(url, "nats://"))
	stream := "HERALD_MERCURE_TEST_" + strings.ToUpper(pubsub.NewEpoch())
	t.Cleanup(func() {
		nc, err := natsgo.Connect(url)
		if err != nil {
			return
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = js.DeleteStream(ctx, stream)
		_ = js.DeleteKeyValue(ctx, stream+"_state")
	})
	return func(c *config.Server) {
		c.Broker.URL = url
		c.Broker.Stream = stream
	}
}

// Two Herald nodes on one broker are one Mercure hub: updates published on
// either reach template subscribers on both, a publisher's id resolves on
// the node that did not publish it, and subscription events cross nodes.
// The reference hub needs its paid edition for this.
func TestCluster(t *testing.T) {
	for name, broker := range map[string]func(*testing.T) func(*config.Server){"redis": redisBroker, "nats": natsBroker} {
		t.Run(name, func(t *testing.T) {
			onBroker := broker(t)
			a := startHub(t, onBroker)
			b := startHub(t, onBroker)
			topics := []string{"https://example.com/c/{n}", "marker"}
			watcher := token(t, subKey, auth.MercureClaim{Subscribe: []string{subscriptionsTemplate}})
			w := subscribe(t, a.URL, sub{topics: []string{subscriptionsTemplate}, tok: watcher, how: "header"})
			onB := subscribe(t, b.URL, sub{topics: topics})
			if ev := decodeSubscription(t, w.Next(t).Data); ev.Topic != topics[0] || !ev.Active {
				t.Fatalf("watcher on A: %+v, want the subscription made on B", ev)
			}

			publish(t, a.URL, form("topic", "https://example.com/c/1", "id", "c1", "data", "1"))
			id2 := publish(t, b.URL, form("topic", "https://example.com/c/2", "data", "2"))
			publish(t, a.URL, form("topic", "https://example.com/c/3", "id", "c3", "private", "on", "data", "secret"))
			publish(t, a.URL, form("topic", "marker", "data", "end1"))
			evs := onB.UntilData(t, "end1")
			if datas(evs) != "1 2" || evs[0].ID != "c1" || evs[1].ID != id2 {
				t.Fatalf("subscriber on B got %+v", evs)
			}

			// Resume on B from the id A's publisher chose, right after
			// more was published on A.
			publish(t, a.URL, form("topic", "https://example.com/c/4", "id", "c4", "data", "4"))
			publish(t, a.URL, form("topic", "marker", "data", "end2"))
			s := subscribe(t, b.URL, sub{topics: topics, lastID: "c1"})
			if got := datas(s.UntilData(t, "end2")); got != "2 end1 4" {
				t.Fatalf("resumed on B from c1: %q, want 2 end1 4", got)
			}
			if h := s.Resp.Header.Get("Last-Event-ID"); h != "c1" {
				t.Fatalf("Last-Event-ID response header %q", h)
			}
			// And on A from an id published on B, with a token that sees
			// the private update.
			all := token(t, subKey, auth.MercureClaim{Subscribe: []string{"*"}})
			s = subscribe(t, a.URL, sub{topics: topics, lastID: id2, tok: all, how: "query"})
			if got := datas(s.UntilData(t, "end2")); got != "secret end1 4" {
				t.Fatalf("resumed on A from %s: %q, want secret end1 4", id2, got)
			}
		})
	}
}

// With durable history (--data-dir), a publisher's id still resolves after
// a restart: the index is rebuilt from the log.
func TestDurableRestart(t *testing.T) {
	dir := t.TempDir()
	durable := func(c *config.Server) { c.Broker.DataDir = dir }
	first := startHub(t, durable)
	publish(t, first.URL, form("topic", "https://example.com/d/1", "id", "d1", "data", "1"))
	publish(t, first.URL, form("topic", "https://example.com/d/2", "id", "d2", "data", "2"))
	publish(t, first.URL, form("topic", "marker", "data", "end"))
	first.Stop()

	again := startHub(t, durable)
	s := subscribe(t, again.URL, sub{topics: []string{"https://example.com/d/{n}", "marker"}, lastID: "d1"})
	if got := datas(s.UntilData(t, "end")); got != "2" {
		t.Fatalf("resumed from d1 after a restart: %q, want 2", got)
	}
	// An id published before the restart may be reused; resuming from it
	// then resumes after its latest update.
	if got := publish(t, again.URL, form("topic", "https://example.com/d/3", "id", "d2", "data", "3")); got != "d2" {
		t.Fatalf("reusing an id published before the restart answered %q", got)
	}
	publish(t, again.URL, form("topic", "https://example.com/d/4", "data", "4"))
	publish(t, again.URL, form("topic", "marker", "data", "end"))
	s = subscribe(t, again.URL, sub{topics: []string{"https://example.com/d/{n}", "marker"}, lastID: "d2"})
	if got := datas(s.UntilData(t, "end")); got != "4" {
		t.Fatalf("resumed from the reused id d2: %q, want 4 (after its latest update)", got)
	}
}
