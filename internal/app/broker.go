package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
	natsbroker "github.com/heraldpush/herald/pubsub/nats"
	redisbroker "github.com/heraldpush/herald/pubsub/redis"
)

// openBroker opens the broker cfg.Broker names.
func openBroker(ctx context.Context, cfg *config.Server, log *slog.Logger) (pubsub.Broker, error) {
	ret := pubsub.Retention{MaxEvents: cfg.History.MaxEvents, MaxAge: cfg.History.MaxAge, MaxBytes: int64(cfg.History.MaxBytes)}
	switch cfg.Broker.URL {
	case "", "memory":
		if cfg.Broker.DataDir != "" {
			return openDurable(cfg.Broker.DataDir, ret, log)
		}
		return memory.New(&memory.Options{Retention: ret}), nil
	}
	switch u := cfg.Broker.URL; {
	case strings.HasPrefix(u, "redis://"), strings.HasPrefix(u, "rediss://"):
		redisbroker.LogTo(log)
		b, err := redisbroker.Open(ctx, u, &redisbroker.Options{Prefix: cfg.Broker.Prefix, Retention: ret, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--broker %s: %w", config.RedactURL(u), err)
		}
		return b, nil
	case strings.HasPrefix(u, "nats://"), strings.HasPrefix(u, "tls://"):
		b, err := natsbroker.Open(ctx, u, &natsbroker.Options{Stream: cfg.Broker.Stream, Retention: ret, Replicas: cfg.Broker.Replicas, Timeout: cfg.Broker.Timeout, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--broker %s: %w", config.RedactURL(u), err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("--broker: unsupported broker %q (use memory, redis://host:port/db or nats://host:port)", config.RedactURL(cfg.Broker.URL))
}
