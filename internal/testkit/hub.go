package testkit

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
	"github.com/heraldpush/herald/pubsub/shard"
)

// ShardedBroker returns a shard.Broker over n memory logs (log k has
// epoch "log<k>"), closed when t ends.
func ShardedBroker(t testing.TB, n int) *shard.Broker {
	t.Helper()
	logs := make([]pubsub.Broker, n)
	for k := range logs {
		logs[k] = memory.New(&memory.Options{Epoch: fmt.Sprint("log", k)})
	}
	b, err := shard.New(context.Background(), logs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// ShardedHub runs a hub over ShardedBroker(t, n) until t ends, with o
// (nil: the defaults, logging nothing).
func ShardedHub(t testing.TB, n int, o *hub.Options) *hub.Hub {
	t.Helper()
	b := ShardedBroker(t, n)
	if o == nil {
		o = &hub.Options{Logger: slog.New(slog.DiscardHandler)}
	}
	h := hub.New(b, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.Run(ctx); close(done) }()
	t.Cleanup(func() { h.Close(); cancel(); <-done })
	return h
}

// ShardTopic returns a topic named after name that lies on shard k of n.
func ShardTopic(name string, k, n int) string {
	for i := 0; ; i++ {
		if t := fmt.Sprintf("%s-%d", name, i); shard.Of(t, n) == k {
			return t
		}
	}
}
