package app

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/bolt"
)

// openDurable opens shard k of the embedded durable store in dir
// (--data-dir), creating the directory if needed: herald.db for shard 0,
// herald.<k>.db for the others.
func openDurable(dir string, k int, ret pubsub.Retention, log *slog.Logger) (pubsub.Broker, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	path := filepath.Join(dir, bolt.FileName)
	if k > 0 {
		path = filepath.Join(dir, strings.TrimSuffix(bolt.FileName, ".db")+"."+strconv.Itoa(k)+".db")
	}
	b, err := bolt.Open(path, &bolt.Options{Retention: ret, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	log.Info("durable history", "file", path, "epoch", b.Epoch())
	return b, nil
}
