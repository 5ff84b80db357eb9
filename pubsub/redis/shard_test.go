package redis_test

import (
	"strconv"
	"testing"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
)

// TestConformanceShard runs the conformance suite on shard 2 of a
// deployment of three (keys "{prefix#2}:…", with the shard counts
// recorded by shard.New): a shard is a log like any other.
func TestConformanceShard(t *testing.T) {
	needRedis(t)
	const n = 3
	newBroker := func(t *testing.T, r pubsub.Retention) pubsub.Broker {
		base := uniquePrefix(t)
		b := pubsubtest.LastShard(t, openShards(t, base, n, r))
		prefixes[b] = base + "#" + strconv.Itoa(n-1)
		return b
	}
	again := func(t *testing.T, b pubsub.Broker) pubsub.Broker {
		return open(t, prefixes[b], pubsub.Retention{})
	}
	pubsubtest.Run(t, newBroker, &pubsubtest.Options{Peer: again, Reopen: again, NotEmpty: true, LargeBytes: 16 << 20})
}

// TestShardCountGuard: a node that opens a deployment's streams with
// another number of shards than the one recorded is refused (two opens,
// as two nodes would), with 1 shard too, unless it reshards.
func TestShardCountGuard(t *testing.T) {
	needRedis(t)
	base := uniquePrefix(t)
	pubsubtest.ShardCountGuard(t, func(n int) []pubsub.Broker {
		return openShards(t, base, n, pubsub.Retention{})
	})
}

// openShards opens shards 0 to n-1 of the deployment whose shard 0 has
// key prefix base (shard k > 0: prefix "<base>#k", its keys deleted when
// the test ends).
func openShards(t *testing.T, base string, n int, r pubsub.Retention) []pubsub.Broker {
	shards := make([]pubsub.Broker, n)
	for k := range shards {
		p := base
		if k > 0 {
			p += "#" + strconv.Itoa(k)
			t.Cleanup(func() { deleteKeys(t, p) })
		}
		shards[k] = open(t, p, r)
	}
	return shards
}
