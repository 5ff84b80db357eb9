package redis_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
	"github.com/heraldpush/herald/pubsub/shard"
)

// TestConformanceShard runs the conformance suite on shard 2 of a
// deployment of three (keys "{prefix#2}:…", with the shard counts
// recorded by shard.New): a shard is a log like any other.
func TestConformanceShard(t *testing.T) {
	needRedis(t)
	const n = 3
	newBroker := func(t *testing.T, r pubsub.Retention) pubsub.Broker {
		base := uniquePrefix(t)
		shards := make([]pubsub.Broker, n)
		for k := range shards {
			p := base
			if k > 0 {
				p += "#" + strconv.Itoa(k)
				t.Cleanup(func() { deleteKeys(t, p) })
			}
			shards[k] = open(t, p, r)
		}
		if _, err := shard.New(context.Background(), shards); err != nil {
			t.Fatal(err)
		}
		for _, s := range shards[:n-1] {
			s.Close()
		}
		prefixes[shards[n-1]] = base + "#" + strconv.Itoa(n-1)
		return shards[n-1]
	}
	again := func(t *testing.T, b pubsub.Broker) pubsub.Broker {
		return open(t, prefixes[b], pubsub.Retention{})
	}
	pubsubtest.Run(t, newBroker, &pubsubtest.Options{Peer: again, Reopen: again, NotEmpty: true, LargeBytes: 16 << 20})
}
