package nats_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
)

// TestTrimmerCountsExistingHistory: a node that starts with a byte bound on
// a stream that already holds more counts what it holds and cuts it
// fairly: the noisy topic, not the quiet one.
func TestTrimmerCountsExistingHistory(t *testing.T) {
	needNATS(t)
	name := uniqueStream(t, natsURL())
	b := open(t, natsURL(), name, pubsub.Retention{})
	ctx := context.Background()
	quiet := &pubsub.Message{Topics: []string{"quiet"}, Data: "the only event"}
	if _, err := b.Publish(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	chunk := strings.Repeat("n", 4<<10)
	var last *pubsub.Message
	for i := range 20 {
		last = &pubsub.Message{Topics: []string{"noisy"}, Data: fmt.Sprint(i, chunk)}
		if _, err := b.Publish(ctx, last); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()

	b = open(t, natsURL(), name, pubsub.Retention{MaxBytes: 32 << 10})
	defer b.Close()
	read := func(topic string) pubsub.Snapshot {
		t.Helper()
		snap, err := b.Read(ctx, pubsub.Query{Topics: []string{topic}, After: &pubsub.Position{Epoch: b.Epoch()}})
		if err != nil {
			t.Fatal(err)
		}
		return snap
	}
	held := -1
	testkit.WaitWithin(t, 10*time.Second, "the trimmer to bring the noisy topic under the byte bound", func() bool {
		snap := read("noisy")
		if n := len(snap.Events); n != held {
			held = n
			t.Logf("the noisy topic holds %d events", held) // shown if the wait fails
		}
		if held == 0 || held > 8 {
			return false
		}
		if !snap.Truncated || snap.Events[held-1].Pos != last.Pos {
			t.Fatalf("noisy topic: %d events %v, truncated %v; want its newest, truncated", held, snap.Events[0].Pos, snap.Truncated)
		}
		return true
	})
	if snap := read("quiet"); len(snap.Events) != 1 || snap.Truncated {
		t.Fatalf("quiet topic: %d events, truncated %v; want its event", len(snap.Events), snap.Truncated)
	}
}
