package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
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
	return nil, fmt.Errorf("--broker: unsupported broker %q (use memory)", cfg.Broker.URL)
}

// redactURL returns a broker URL without its password, for display.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
