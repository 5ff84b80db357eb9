package pubsubtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
)

func isFinished(err error) bool { return errors.Is(err, pubsub.ErrTopicFinished) }

// testTruncationMaxEvents: per-topic count retention keeps the newest
// messages of each topic, and truncation is reported exactly when a message
// the client needs was evicted.
func (s *suite) testTruncationMaxEvents(t *testing.T) {
	if s.o.NoMaxEvents {
		t.Skip("broker declares NoMaxEvents")
	}
	const keep = 5
	b := s.open(t, pubsub.Retention{MaxEvents: keep})
	var as, bs []*pubsub.Message
	for i := range 20 {
		as = append(as, publish(t, b, msg(fmt.Sprint(i), "ma")))
		if i < 3 {
			bs = append(bs, publish(t, b, msg(fmt.Sprint(i), "mb")))
		}
	}
	e := b.Epoch()

	snap := read(t, b, at(e, 0), "ma")
	checkMessages(t, "ma from start", snap.Events, as[len(as)-keep:])
	if !snap.Truncated {
		t.Error("ma from start: Truncated false, want true (15 messages evicted)")
	}
	// The client saw as[14]: it needs as[15:], all kept.
	snap = read(t, b, at(e, as[14].Pos.Offset), "ma")
	checkMessages(t, "ma after the last evicted message", snap.Events, as[15:])
	if snap.Truncated {
		t.Error("ma after the last evicted message: Truncated true, want false")
	}
	// The client saw as[13]: it needs as[14], evicted.
	snap = read(t, b, at(e, as[13].Pos.Offset), "ma")
	if !snap.Truncated {
		t.Error("ma after a message before the last evicted one: Truncated false, want true")
	}
	checkMessages(t, "ma after as[13]", snap.Events, as[15:])

	// Topic mb had only 3 messages: nothing of it was evicted.
	snap = read(t, b, at(e, 0), "mb")
	checkMessages(t, "mb from start", snap.Events, bs)
	if snap.Truncated && !s.o.CoarseTruncation {
		t.Error("mb from start: Truncated true, but no message of mb was evicted")
	}
	// Both together: truncated because of ma.
	snap = read(t, b, at(e, 0), "ma", "mb")
	if !snap.Truncated {
		t.Error("ma+mb from start: Truncated false, want true")
	}
	checkMessages(t, "ma+mb from start", snap.Events, sortByPos(append(append([]*pubsub.Message{}, bs...), as[15:]...)))
}

// testStateOutlivesHistory: a retained message is its topic's state, not
// history: evicting it from history keeps it for new subscribers.
func (s *suite) testStateOutlivesHistory(t *testing.T) {
	if s.o.NoMaxEvents {
		t.Skip("broker declares NoMaxEvents")
	}
	b := s.open(t, pubsub.Retention{MaxEvents: 2})
	r := msg("state", "st")
	r.Retain = true
	publish(t, b, r)
	f := msg("end", "fn")
	f.Final = true
	publish(t, b, f)
	for i := range 5 {
		publish(t, b, msg(fmt.Sprint(i), "st"))
	}
	snap := read(t, b, at(b.Epoch(), 0), "st")
	if n := len(snap.Events); n != 2 || snap.Events[0].Pos.Offset <= r.Pos.Offset {
		t.Fatalf("history of st: %v, want the 2 newest messages", offsets(snap.Events))
	}
	snap = read(t, b, nil, "st", "fn")
	checkMessages(t, "retained after its message left history", snap.Retained, []*pubsub.Message{r})
	if snap.Finals["fn"] != f.Pos {
		t.Errorf("Finals %v, want fn at %v", snap.Finals, f.Pos)
	}
	if _, err := b.Publish(context.Background(), msg("late", "fn")); !isFinished(err) {
		t.Errorf("Publish to a finished topic: %v, want ErrTopicFinished", err)
	}
}

// testTruncationMaxBytes: a bound on the whole history's size keeps the
// newest messages, and reports truncation to clients from before them.
func (s *suite) testTruncationMaxBytes(t *testing.T) {
	if s.o.NoMaxBytes {
		t.Skip("broker declares NoMaxBytes")
	}
	const maxBytes = 32 << 10
	b := s.open(t, pubsub.Retention{MaxBytes: maxBytes})
	data := strings.Repeat("x", 1000)
	var all []*pubsub.Message
	for i := range 200 {
		all = append(all, publish(t, b, msg(fmt.Sprintf("%d:%s", i, data), "mbytes")))
	}
	e := b.Epoch()
	last := all[len(all)-1]
	var snap pubsub.Snapshot
	// Brokers may enforce the bound asynchronously.
	eventually(t, s.o.Wait, func() string {
		snap = read(t, b, at(e, 0), "mbytes")
		size := 0
		for _, m := range snap.Events {
			size += m.Size()
		}
		if size > 2*maxBytes {
			return fmt.Sprintf("history holds %d bytes in %d messages, want at most about %d", size, len(snap.Events), maxBytes)
		}
		return ""
	})
	if !snap.Truncated {
		t.Error("from start: Truncated false, want true")
	}
	n := len(snap.Events)
	if n == 0 || snap.Events[n-1].Pos != last.Pos {
		t.Fatalf("history %v does not end with the newest message %v", offsets(snap.Events), last.Pos)
	}
	checkMessages(t, "kept history", snap.Events, all[len(all)-n:])
	// A broker that trims after publishes may still be cutting (the wait
	// above allows twice the bound): a resume just before the oldest kept
	// message must not report truncation unless that message was evicted
	// in between, which a fresh read tells.
	eventually(t, s.o.Wait, func() string {
		from := read(t, b, at(e, 0), "mbytes")
		n := len(from.Events)
		if n == 0 {
			return "the topic lost its newest message"
		}
		first := from.Events[0].Pos.Offset
		after := read(t, b, at(e, first-1), "mbytes")
		if !after.Truncated {
			if len(after.Events) > 0 && after.Events[0].Pos.Offset != first {
				return fmt.Sprintf("still being cut (the oldest kept message moved from %d to %d)", first, after.Events[0].Pos.Offset)
			}
			checkMessages(t, "after the last evicted message", after.Events, all[len(all)-n:])
			return ""
		}
		if again := read(t, b, at(e, 0), "mbytes"); len(again.Events) > 0 && again.Events[0].Pos.Offset != first {
			return fmt.Sprintf("still being cut (the oldest kept message moved from %d to %d)", first, again.Events[0].Pos.Offset)
		}
		t.Fatalf("after %d (just before the oldest kept message): Truncated true, want false", first-1)
		return ""
	})
}

// testTruncationMaxAge: messages older than MaxAge leave history; a client
// that had seen them resumes without a reset, one that had not is told.
func (s *suite) testTruncationMaxAge(t *testing.T) {
	if s.o.NoMaxAge {
		t.Skip("broker declares NoMaxAge")
	}
	const maxAge = time.Second
	b := s.open(t, pubsub.Retention{MaxAge: maxAge})
	e := b.Epoch()
	var old []*pubsub.Message
	for i := range 3 {
		old = append(old, publish(t, b, msg(fmt.Sprint(i), "aged")))
	}
	last := old[len(old)-1].Pos
	snap := read(t, b, at(e, 0), "aged")
	checkMessages(t, "young messages", snap.Events, old)

	eventually(t, maxAge+s.o.Wait, func() string {
		snap = read(t, b, at(e, 0), "aged")
		if len(snap.Events) > 0 {
			return fmt.Sprintf("messages %v older than MaxAge %v are still in history", offsets(snap.Events), maxAge)
		}
		return ""
	})
	if !snap.Truncated {
		t.Error("from start after expiry: Truncated false, want true")
	}
	snap = read(t, b, at(e, last.Offset), "aged")
	if snap.Truncated || len(snap.Events) != 0 {
		t.Errorf("after the last expired message: Truncated=%v events=%v, want false and none", snap.Truncated, offsets(snap.Events))
	}
	fresh := publish(t, b, msg("fresh", "aged"))
	snap = read(t, b, at(e, last.Offset), "aged")
	checkMessages(t, "after the last expired message, new message", snap.Events, []*pubsub.Message{fresh})
	if snap.Truncated {
		t.Error("after the last expired message, new message: Truncated true, want false")
	}
	snap = read(t, b, at(e, 0), "aged")
	if !snap.Truncated {
		t.Error("from start, new message: Truncated false, want true")
	}
	checkMessages(t, "from start, new message", snap.Events, []*pubsub.Message{fresh})
}

// testPurge: a Purger drops a topic's history, retained and final state;
// clients from before are told their history was truncated.
func (s *suite) testPurge(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	p, ok := b.(pubsub.Purger)
	if !ok {
		t.Skip("broker does not implement pubsub.Purger")
	}
	e := b.Epoch()
	r := msg("state", "pg")
	r.Retain = true
	publish(t, b, r)
	keep := publish(t, b, msg("kept", "other"))
	f := msg("end", "pg")
	f.Final = true
	publish(t, b, f)
	if err := p.Purge(context.Background(), "pg"); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	snap := read(t, b, at(e, 0), "pg")
	if len(snap.Events) != 0 || !snap.Truncated {
		t.Errorf("purged topic from start: events %v Truncated %v, want none and true", offsets(snap.Events), snap.Truncated)
	}
	snap = read(t, b, nil, "pg")
	if len(snap.Retained) != 0 || len(snap.Finals) != 0 {
		t.Errorf("purged topic: Retained %d Finals %v, want none", len(snap.Retained), snap.Finals)
	}
	snap = read(t, b, at(e, 0), "other")
	checkMessages(t, "other topic", snap.Events, []*pubsub.Message{keep})
	again := publish(t, b, msg("again", "pg"))
	snap = read(t, b, at(e, f.Pos.Offset), "pg")
	checkMessages(t, "purged topic, published again", snap.Events, []*pubsub.Message{again})
	if snap.Truncated {
		t.Error("purged topic after the purge: Truncated true, want false")
	}
}

func sortByPos(ms []*pubsub.Message) []*pubsub.Message {
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && ms[j].Pos.Offset < ms[j-1].Pos.Offset; j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
	return ms
}
