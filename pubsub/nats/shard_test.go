package nats_test

import (
	"strconv"
	"testing"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
)

// TestConformanceShard runs the conformance suite on shard 2 of a
// deployment of three (stream "<stream>_2", with the shard counts recorded
// by shard.New): a shard is a log like any other.
func TestConformanceShard(t *testing.T) {
	needNATS(t)
	const n = 3
	newBroker := func(t *testing.T, r pubsub.Retention) pubsub.Broker {
		base := uniqueStream(t, natsURL())
		b := pubsubtest.LastShard(t, openShards(t, base, n, r))
		streamsMu.Lock()
		streams[b] = base + "_" + strconv.Itoa(n-1)
		streamsMu.Unlock()
		return b
	}
	again := func(t *testing.T, b pubsub.Broker) pubsub.Broker {
		streamsMu.Lock()
		name := streams[b]
		streamsMu.Unlock()
		return open(t, natsURL(), name, pubsub.Retention{})
	}
	pubsubtest.Run(t, newBroker, &pubsubtest.Options{Peer: again, Reopen: again, CondOwnTopics: true, MaxData: maxData, NotEmpty: true, LargeBytes: 16 << 20})
}

// TestShardCountGuard: a node that opens a deployment's streams with
// another number of shards than the one recorded is refused (two opens,
// as two nodes would), with 1 shard too, unless it reshards.
func TestShardCountGuard(t *testing.T) {
	needNATS(t)
	base := uniqueStream(t, natsURL())
	pubsubtest.ShardCountGuard(t, func(n int) []pubsub.Broker {
		return openShards(t, base, n, pubsub.Retention{})
	})
}

// openShards opens shards 0 to n-1 of the deployment whose shard 0 is
// stream base (shard k > 0: stream "<base>_k", deleted when the test
// ends).
func openShards(t *testing.T, base string, n int, r pubsub.Retention) []pubsub.Broker {
	shards := make([]pubsub.Broker, n)
	for k := range shards {
		name := base
		if k > 0 {
			name += "_" + strconv.Itoa(k)
			t.Cleanup(func() { deleteStream(t, natsURL(), name) })
		}
		shards[k] = open(t, natsURL(), name, r)
	}
	return shards
}
