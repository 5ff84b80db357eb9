package redis_test

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
	"github.com/heraldpush/herald/pubsub/redis"
)

// redisAddr is the Redis the tests use (override with HERALD_TEST_REDIS).
func redisAddr() string {
	if a := os.Getenv("HERALD_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// needRedis skips the test when Redis is absent, unless CI is set.
func needRedis(t testing.TB) {
	t.Helper()
	c, err := net.DialTimeout("tcp", redisAddr(), time.Second)
	if err == nil {
		c.Close()
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("Redis is not reachable at %s (CI is set, so this fails): %v", redisAddr(), err)
	}
	t.Skipf("Redis is not reachable at %s and CI is unset: skipping (%v)", redisAddr(), err)
}

// uniquePrefix returns a key prefix no other test uses, and deletes its keys
// when the test ends.
func uniquePrefix(t testing.TB) string {
	t.Helper()
	p := "herald-test-" + pubsub.NewEpoch()
	t.Cleanup(func() { deleteKeys(t, p) })
	return p
}

// deleteKeys deletes every key of a prefix, as if Redis lost them.
func deleteKeys(t testing.TB, prefix string) {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: redisAddr()})
	defer rdb.Close()
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, "{"+prefix+"}*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("scan keys of %s: %v", prefix, err)
		return
	}
	if len(keys) > 0 {
		if err := rdb.Del(ctx, keys...).Err(); err != nil {
			t.Errorf("delete keys of %s: %v", prefix, err)
		}
	}
}

func open(t testing.TB, prefix string, r pubsub.Retention) *redis.Broker {
	t.Helper()
	b, err := redis.Open(context.Background(), "redis://"+redisAddr()+"/0", &redis.Options{
		Prefix: prefix, Retention: r, SweepInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("redis.Open: %v", err)
	}
	return b
}

// prefixes remembers the prefix of each broker the suite opened.
var prefixes = map[pubsub.Broker]string{}

func TestConformance(t *testing.T) {
	needRedis(t)
	newBroker := func(t *testing.T, r pubsub.Retention) pubsub.Broker {
		p := uniquePrefix(t)
		b := open(t, p, r)
		prefixes[b] = p
		return b
	}
	again := func(t *testing.T, b pubsub.Broker) pubsub.Broker {
		return open(t, prefixes[b], pubsub.Retention{})
	}
	pubsubtest.Run(t, newBroker, &pubsubtest.Options{Peer: again, Reopen: again})
}
