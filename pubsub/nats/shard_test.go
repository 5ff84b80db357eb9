package nats_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
	"github.com/heraldpush/herald/pubsub/shard"
)

// TestConformanceShard runs the conformance suite on shard 2 of a
// deployment of three (stream "<stream>_2", with the shard counts recorded
// by shard.New): a shard is a log like any other.
func TestConformanceShard(t *testing.T) {
	needNATS(t)
	const n = 3
	newBroker := func(t *testing.T, r pubsub.Retention) pubsub.Broker {
		base := uniqueStream(t, natsURL())
		shards := make([]pubsub.Broker, n)
		for k := range shards {
			name := base
			if k > 0 {
				name += "_" + strconv.Itoa(k)
				t.Cleanup(func() { deleteStream(t, natsURL(), name) })
			}
			shards[k] = open(t, natsURL(), name, r)
		}
		if _, err := shard.New(context.Background(), shards); err != nil {
			t.Fatal(err)
		}
		for _, s := range shards[:n-1] {
			s.Close()
		}
		streamsMu.Lock()
		streams[shards[n-1]] = base + "_" + strconv.Itoa(n-1)
		streamsMu.Unlock()
		return shards[n-1]
	}
	again := func(t *testing.T, b pubsub.Broker) pubsub.Broker {
		streamsMu.Lock()
		name := streams[b]
		streamsMu.Unlock()
		return open(t, natsURL(), name, pubsub.Retention{})
	}
	pubsubtest.Run(t, newBroker, &pubsubtest.Options{Peer: again, Reopen: again, CondOwnTopics: true, MaxData: maxData, NotEmpty: true, LargeBytes: 16 << 20})
}
