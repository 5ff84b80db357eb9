package memory

import (
	"context"
	"fmt"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

// A log bounded only per topic must not keep an entry (and its message) for
// every message ever published.
func TestEvictedEntriesAreFreed(t *testing.T) {
	b := New(&Options{Retention: pubsub.Retention{MaxEvents: 10}})
	defer b.Close()
	for i := range 50_000 {
		m := &pubsub.Message{Topics: []string{fmt.Sprint("t", i%3)}, Data: "payload"}
		if _, err := b.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := len(b.all) - b.head; n > 2100 {
		t.Errorf("the log keeps %d entries for 30 retained messages", n)
	}
	held := 0
	for _, e := range b.all[b.head:] {
		if e.m != nil {
			held++
		}
		if (e.m != nil) != (e.refs > 0) {
			t.Fatalf("entry refs %d, message %v", e.refs, e.m)
		}
	}
	if held != 30 || b.live != 30 {
		t.Errorf("%d messages held, live count %d; want 30", held, b.live)
	}
}
