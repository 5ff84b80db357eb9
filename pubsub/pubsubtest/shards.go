package pubsubtest

import (
	"context"
	"errors"
	"testing"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/shard"
)

// ShardCountGuard checks the shard count that shard.New records on a
// deployment's shards: a node that opens them with another number of
// shards than the one recorded is refused (shard.ErrShardCount), with one
// shard too (shard.Check), unless it reshards; a node with the recorded
// number is let in.
//
// openN opens shards 0 to n-1 of one deployment, as a node would: every
// call opens new brokers on the same storage (shard k on the same key
// prefix, stream or file each time), shard 0 on the storage of a
// deployment without shards. ShardCountGuard closes what it opens.
func ShardCountGuard(t *testing.T, openN func(n int) []pubsub.Broker) {
	t.Helper()
	ctx := context.Background()
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

// LastShard records the shard count on shards with shard.New, as every
// node of a sharded deployment does when it starts, then closes all of
// them but the last and returns it: a shard of a deployment, to run the
// suite on.
func LastShard(t *testing.T, shards []pubsub.Broker) pubsub.Broker {
	t.Helper()
	if _, err := shard.New(context.Background(), shards, nil); err != nil {
		t.Fatal(err)
	}
	n := len(shards)
	for _, s := range shards[:n-1] {
		s.Close()
	}
	return shards[n-1]
}
