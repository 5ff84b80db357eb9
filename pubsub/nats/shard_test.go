package nats_test

import (
	"context"
	"errors"
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
		if _, err := shard.New(context.Background(), shards, nil); err != nil {
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

// TestShardCountGuard: a node that opens a deployment's streams with
// another number of shards than the one recorded is refused (two opens,
// as two nodes would), with 1 shard too, unless it reshards.
func TestShardCountGuard(t *testing.T) {
	needNATS(t)
	base := uniqueStream(t, natsURL())
	ctx := context.Background()
	openN := func(n int) []pubsub.Broker {
		shards := make([]pubsub.Broker, n)
		for k := range shards {
			name := base
			if k > 0 {
				name += "_" + strconv.Itoa(k)
				t.Cleanup(func() { deleteStream(t, natsURL(), name) })
			}
			shards[k] = open(t, natsURL(), name, pubsub.Retention{})
		}
		return shards
	}
	closeAll := func(bs []pubsub.Broker) {
		for _, b := range bs {
			b.Close()
		}
	}
	first, err := shard.New(ctx, openN(2), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	three := openN(3)
	if _, err := shard.New(ctx, three, nil); !errors.Is(err, shard.ErrShardCount) {
		t.Errorf("a node with 3 shards against 2: %v, want ErrShardCount", err)
	}
	closeAll(three)
	one := openN(1)
	if err := shard.Check(ctx, one[0], nil); !errors.Is(err, shard.ErrShardCount) {
		t.Errorf("a node with 1 shard against 2: %v, want ErrShardCount", err)
	}
	closeAll(one)
	same, err := shard.New(ctx, openN(2), nil)
	if err != nil {
		t.Errorf("a second node with 2 shards: %v", err)
	} else {
		same.Close()
	}
	re, err := shard.New(ctx, openN(3), &shard.Options{Reshard: true})
	if err != nil {
		t.Fatalf("resharding to 3: %v", err)
	}
	re.Close()
	after, err := shard.New(ctx, openN(3), nil)
	if err != nil {
		t.Fatalf("a node with 3 shards after resharding to 3: %v", err)
	}
	after.Close()
}
