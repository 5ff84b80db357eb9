package shard_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
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

// TestReadTopicTo: ReadTopicTo goes to the topic's shard when that shard
// is a pubsub.TopicStreamer (bolt), and answers errors.ErrUnsupported,
// calling nothing, when it is not (memory), so that callers read with
// ReadTopic instead.
func TestReadTopicTo(t *testing.T) {
	ctx := context.Background()
	bb, err := bolt.Open(filepath.Join(t.TempDir(), "shard0.db"), &bolt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	mb := memory.New(&memory.Options{Epoch: "m1"})
	b, err := shard.New(ctx, []pubsub.Broker{bb, mb}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	onBolt, onMemory := "", ""
	for i := 0; onBolt == "" || onMemory == ""; i++ {
		topic := fmt.Sprint("t", i)
		if b.ShardOf(topic) == 0 {
			onBolt = topic
		} else {
			onMemory = topic
		}
	}
	var tail pubsub.Position
	for i := range 5 {
		if tail, err = b.PublishIf(ctx, tail, &pubsub.Message{Topics: []string{onBolt}, Data: fmt.Sprint("m", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	gotTail, err := b.ReadTopicTo(ctx, onBolt, pubsub.Position{}, 0, func(m *pubsub.Message) error {
		got = append(got, strings.Clone(m.Data)) // m's data is the store's
		return nil
	})
	if err != nil || gotTail != tail || fmt.Sprint(got) != "[m0 m1 m2 m3 m4]" {
		t.Fatalf("on a bolt shard: %v, tail %v (want %v), %v", got, gotTail, tail, err)
	}
	_, err = b.ReadTopicTo(ctx, onMemory, pubsub.Position{}, 0, func(*pubsub.Message) error {
		t.Error("called on a shard without ReadTopicTo")
		return nil
	})
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("on a memory shard: %v, want errors.ErrUnsupported", err)
	}
}
