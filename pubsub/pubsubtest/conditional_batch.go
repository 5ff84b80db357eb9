package pubsubtest

import (
	"context"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

// testCondBatch: messages that PublishBatch appends move the tail as
// Publish does, also on a purged topic (a broker that caches "purged, no
// tail" must forget it when a batch appends), and a PublishIf whose ID a
// batch used before is appended all the same (the ID does not deduplicate
// a conditional append).
func (s *suite) testCondBatch(t *testing.T) {
	b, c := s.conditional(t)
	bp := batchOf(t, b)
	ctx := context.Background()
	const topic = "cond.batch"

	batch := []*pubsub.Message{
		{Topics: []string{topic}, Data: "0", ID: "cb-0"},
		{Topics: []string{"cond.batch.other"}, Data: "1"},
		{Topics: []string{topic}, Data: "2", ID: "cb-2"},
	}
	if n, err := bp.PublishBatch(ctx, batch); n != len(batch) || err != nil {
		t.Fatalf("PublishBatch = %d, %v", n, err)
	}
	msgs, tail := readTopic(t, c, topic, pubsub.Position{}, 0)
	if tail != batch[2].Pos {
		t.Fatalf("tail %v after a batch, want its last message on %q at %v", tail, topic, batch[2].Pos)
	}
	checkMessages(t, "after a batch", msgs, []*pubsub.Message{batch[0], batch[2]})
	wantConflict(t, c, batch[0].Pos, topic)
	wantConflict(t, c, pubsub.Position{}, topic)
	again := &pubsub.Message{Topics: []string{topic}, Data: "3, the ID of 0", ID: "cb-0"}
	publishIf(t, c, batch[2].Pos, again)
	if again.Pos == batch[0].Pos {
		t.Fatalf("PublishIf with a batch's ID answered the batch's position %v", again.Pos)
	}
	msgs, _ = readTopic(t, c, topic, pubsub.Position{}, 0)
	checkMessages(t, "after PublishIf", msgs, []*pubsub.Message{batch[0], batch[2], again})

	p, ok := b.(pubsub.Purger)
	if !ok {
		return
	}
	if err := p.Purge(ctx, topic); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if _, tail := readTopic(t, c, topic, pubsub.Position{}, 0); !tail.IsZero() {
		t.Fatalf("purged topic: tail %v, want the zero Position", tail)
	}
	after := []*pubsub.Message{{Topics: []string{topic}, Data: "4, after the purge"}}
	if n, err := bp.PublishBatch(ctx, after); n != 1 || err != nil {
		t.Fatalf("PublishBatch after the purge = %d, %v", n, err)
	}
	// The zero tail (what the purge left) is stale now.
	wantConflict(t, c, pubsub.Position{}, topic)
	msgs, tail = readTopic(t, c, topic, pubsub.Position{}, 0)
	if tail != after[0].Pos {
		t.Fatalf("tail %v after a batch on the purged topic, want %v", tail, after[0].Pos)
	}
	checkMessages(t, "after the purge and a batch", msgs, after)
	publishIf(t, c, after[0].Pos, msg("5", topic))
}
