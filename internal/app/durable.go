package app

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/bolt"
)

// openDurable opens the embedded durable store in dir (--data-dir),
// creating the directory if needed.
func openDurable(dir string, ret pubsub.Retention, log *slog.Logger) (pubsub.Broker, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	path := filepath.Join(dir, bolt.FileName)
	b, err := bolt.Open(path, &bolt.Options{Retention: ret, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	log.Info("durable history", "file", path, "epoch", b.Epoch())
	return b, nil
}
