package app

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
	natsbroker "github.com/heraldpush/herald/pubsub/nats"
	redisbroker "github.com/heraldpush/herald/pubsub/redis"
	"github.com/heraldpush/herald/pubsub/shard"
)

// openBroker opens the broker cfg.Broker names: one log, or with
// --broker-shards N, N logs (shard k on the k-th --broker URL modulo their
// number) behind a shard.Broker.
func openBroker(ctx context.Context, cfg *config.Server, log *slog.Logger) (pubsub.Broker, error) {
	n := max(cfg.Broker.Shards, 1)
	b, err := openShards(ctx, cfg, func(u string, k int) (pubsub.Broker, error) {
		b, err := openShard(ctx, cfg, u, k, n, log)
		if err != nil && n > 1 {
			return nil, fmt.Errorf("shard %d: %w", k, err)
		}
		return b, err
	})
	if err != nil {
		return nil, err
	}
	if n > 1 {
		log.Info("broker shards", "shards", n, "brokers", len(cfg.Broker.All()))
	}
	return b, nil
}

// openShards opens the --broker-shards shards with open (shard k on the
// k-th --broker URL modulo their number) and joins them: one shard is
// checked against the count its broker recorded (shard.Check) and
// returned as it is, several go behind a shard.Broker. The errors of open
// are returned as they are; on any error, the shards opened are closed.
func openShards(ctx context.Context, cfg *config.Server, open func(u string, k int) (pubsub.Broker, error)) (pubsub.Broker, error) {
	n := max(cfg.Broker.Shards, 1)
	urls := cfg.Broker.All()
	shards := make([]pubsub.Broker, 0, n)
	closeAll := func() {
		for _, s := range shards {
			_ = s.Close()
		}
	}
	for k := range n {
		b, err := open(urls[k%len(urls)], k)
		if err != nil {
			closeAll()
			return nil, err
		}
		shards = append(shards, b)
	}
	opts := &shard.Options{Reshard: cfg.Broker.Reshard}
	if n == 1 {
		if err := shard.Check(ctx, shards[0], opts); err != nil {
			closeAll()
			return nil, fmt.Errorf("--broker-shards: %w", err)
		}
		return shards[0], nil
	}
	sb, err := shard.New(ctx, shards, opts)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("--broker-shards: %w", err)
	}
	return sb, nil
}

// openShard opens shard k of n on the broker at url. Shard 0 keeps the
// storage of a deployment without shards (its key prefix, stream or file),
// so that going from one shard to several keeps its history and ids.
func openShard(ctx context.Context, cfg *config.Server, u string, k, n int, log *slog.Logger) (pubsub.Broker, error) {
	ret := pubsub.Retention{MaxEvents: cfg.History.MaxEvents, MaxAge: cfg.History.MaxAge, MaxBytes: int64(cfg.History.MaxBytes)}
	switch u {
	case "", "memory":
		if cfg.Broker.DataDir != "" {
			return openDurable(cfg.Broker.DataDir, k, ret, log)
		}
		return memory.New(&memory.Options{Retention: ret}), nil
	}
	switch {
	case strings.HasPrefix(u, "redis://"), strings.HasPrefix(u, "rediss://"):
		redisbroker.LogTo(log)
		prefix := cfg.Broker.Prefix
		if k > 0 {
			prefix += "#" + strconv.Itoa(k)
		}
		b, err := redisbroker.Open(ctx, u, &redisbroker.Options{Prefix: prefix, Retention: ret, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--broker %s: %w", config.RedactURL(u), err)
		}
		return b, nil
	case strings.HasPrefix(u, "nats://"), strings.HasPrefix(u, "tls://"):
		stream := cfg.Broker.Stream
		if k > 0 {
			stream += "_" + strconv.Itoa(k)
		}
		b, err := natsbroker.Open(ctx, u, &natsbroker.Options{Stream: stream, Retention: ret, Replicas: cfg.Broker.Replicas, Timeout: cfg.Broker.Timeout, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--broker %s: %w", config.RedactURL(u), err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("--broker: unsupported broker %q (use memory, redis://host:port/db or nats://host:port)", config.RedactURL(u))
}
