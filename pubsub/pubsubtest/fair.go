package pubsubtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

// testFairMaxBytes: the bound on the whole history's size is shared
// fairly (see pubsub.Retention.MaxBytes): it evicts the oldest messages of
// the topic that holds the most, and never a topic's newest message, so
// that one noisy topic cannot flush the others' history. A noisy topic
// publishing five times the bound leaves a quiet topic's only message, a
// small topic's few messages and a big topic's only message (larger than
// what the noisy topic keeps) in place, and its own history, cut to fit,
// still reports truncation exactly.
func (s *suite) testFairMaxBytes(t *testing.T) {
	if s.o.NoMaxBytes {
		t.Skip("broker declares NoMaxBytes")
	}
	const maxBytes = 64 << 10
	b := s.open(t, pubsub.Retention{MaxBytes: maxBytes})
	big := publish(t, b, msg(strings.Repeat("b", 24<<10), "fair-big"))
	only := publish(t, b, msg("the only event", "fair-quiet"))
	var few []*pubsub.Message
	for i := range 3 {
		few = append(few, publish(t, b, msg(fmt.Sprint("few ", i), "fair-few")))
	}
	chunk := strings.Repeat("n", maxBytes/8)
	var noisy []*pubsub.Message
	for i := range 40 {
		noisy = append(noisy, publish(t, b, msg(fmt.Sprintf("%d:%s", i, chunk), "fair-noisy")))
	}
	e := b.Epoch()

	// Brokers may enforce the bound asynchronously.
	var snap pubsub.Snapshot
	eventually(t, s.o.Wait, func() string {
		snap = read(t, b, at(e, 0), "fair-noisy")
		size := 0
		for _, m := range snap.Events {
			size += m.Size()
		}
		if size > maxBytes {
			return fmt.Sprintf("the noisy topic holds %d bytes in %d messages, want at most %d", size, len(snap.Events), maxBytes)
		}
		return ""
	})
	n := len(snap.Events)
	if n == 0 || snap.Events[n-1].Pos != noisy[len(noisy)-1].Pos {
		t.Fatalf("noisy history %v does not end with its newest message %v", offsets(snap.Events), noisy[len(noisy)-1].Pos)
	}
	checkMessages(t, "noisy history kept", snap.Events, noisy[len(noisy)-n:])
	if !snap.Truncated {
		t.Error("noisy from start: Truncated false, want true")
	}
	// A broker that trims after publishes may still be cutting the noisy
	// topic (the bound covers every topic, the wait above only the noisy
	// one): a resume just before its oldest kept message must not report
	// truncation unless that message was evicted in between, which a
	// fresh read tells.
	eventually(t, s.o.Wait, func() string {
		from := read(t, b, at(e, 0), "fair-noisy")
		if len(from.Events) == 0 {
			return "the noisy topic lost its newest message"
		}
		first := from.Events[0].Pos.Offset
		if !read(t, b, at(e, first-1), "fair-noisy").Truncated {
			return ""
		}
		if again := read(t, b, at(e, 0), "fair-noisy"); len(again.Events) > 0 && again.Events[0].Pos.Offset != first {
			return fmt.Sprintf("the noisy topic is still being cut (its oldest kept message moved from %d to %d)", first, again.Events[0].Pos.Offset)
		}
		t.Fatalf("noisy after %d (just before its oldest kept message): Truncated true, want false", first-1)
		return ""
	})

	for _, tc := range []struct {
		topic string
		want  []*pubsub.Message
	}{
		{"fair-quiet", []*pubsub.Message{only}},
		{"fair-few", few},
		{"fair-big", []*pubsub.Message{big}},
	} {
		snap = read(t, b, at(e, 0), tc.topic)
		checkMessages(t, tc.topic+" after the noisy topic filled the bound", snap.Events, tc.want)
		if snap.Truncated {
			t.Errorf("%s from start: Truncated true, but the noisy topic should have been evicted instead", tc.topic)
		}
	}
}
