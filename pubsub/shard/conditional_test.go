package shard_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/bolt"
	"github.com/heraldpush/herald/pubsub/memory"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
	"github.com/heraldpush/herald/pubsub/shard"
)

// TestConditional runs the suite's conditional tests on a broker of three
// bolt shards: each topic's reads and appends go to its shard.
func TestConditional(t *testing.T) {
	pubsubtest.RunConditional(t, func(t *testing.T, r pubsub.Retention) pubsub.Broker {
		shards := make([]pubsub.Broker, 3)
		for k := range shards {
			b, err := bolt.Open(filepath.Join(t.TempDir(), fmt.Sprint("shard", k, ".db")), &bolt.Options{
				Retention: r, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err != nil {
				t.Fatal(err)
			}
			shards[k] = b
		}
		b, err := shard.New(context.Background(), shards, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}, &pubsubtest.Options{NotEmpty: true, LargeBytes: 16 << 20})
}

// TestConditionalUnsupported: a shard that is not Conditional is an error,
// not a panic.
func TestConditionalUnsupported(t *testing.T) {
	b, err := shard.New(context.Background(), []pubsub.Broker{memory.New(&memory.Options{Epoch: "m0"})}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, ok := b.Shards()[0].(pubsub.Conditional); ok {
		t.Skip("the memory broker implements pubsub.Conditional now: nothing to refuse")
	}
	if _, _, err := b.ReadTopic(context.Background(), "t", pubsub.Position{}, 0); !errors.Is(err, shard.ErrNotConditional) {
		t.Errorf("ReadTopic: %v, want ErrNotConditional", err)
	}
	if _, err := b.PublishIf(context.Background(), pubsub.Position{}, &pubsub.Message{Topics: []string{"t"}}); !errors.Is(err, shard.ErrNotConditional) {
		t.Errorf("PublishIf: %v, want ErrNotConditional", err)
	}
}
