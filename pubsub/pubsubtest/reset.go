package pubsubtest

import (
	"fmt"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

// testRetainedAfterReset: a subscriber that resumes with a reset (its
// history was truncated, or its position is of another epoch) gets each
// topic's retained message again, as a new subscriber does, even when the
// message left history; a subscriber that resumes exactly does not.
func (s *suite) testRetainedAfterReset(t *testing.T) {
	if s.o.NoMaxEvents {
		t.Skip("broker declares NoMaxEvents")
	}
	b := s.open(t, pubsub.Retention{MaxEvents: 3})
	retain := func(data string, topics ...string) *pubsub.Message {
		m := msg(data, topics...)
		m.Retain = true
		return publish(t, b, m)
	}
	old := retain("10%", "job")
	state := retain("20%", "job", "jobs")
	for i := range 5 {
		publish(t, b, msg(fmt.Sprint("log ", i), "job"))
	}
	other := retain("ready", "other")
	publish(t, b, msg("plain", "plain"))
	e := b.Epoch()
	h := head(t, b)

	// The retained message left job's history (3 kept per topic).
	snap := read(t, b, at(e, 0), "job")
	for _, m := range snap.Events {
		if m.Pos == state.Pos || m.Pos == old.Pos {
			t.Fatalf("job's history still holds the retained message %v: %v", m.Pos, offsets(snap.Events))
		}
	}
	if !snap.Truncated {
		t.Fatal("job from start: Truncated false, want true")
	}
	checkMessages(t, "Retained after a truncated resume of job", snap.Retained, []*pubsub.Message{state})

	snap = read(t, b, at(e, 0), "job", "other", "plain")
	checkMessages(t, "Retained after a truncated resume of job, other, plain", snap.Retained, []*pubsub.Message{state, other})

	foreign := pubsub.NewEpoch()
	for foreign == e {
		foreign = pubsub.NewEpoch()
	}
	for _, off := range []uint64{0, 2, h.Offset + 1000} {
		snap = read(t, b, at(foreign, off), "job", "other", "plain")
		if !snap.EpochChanged {
			t.Fatalf("after %s-%d: EpochChanged false", foreign, off)
		}
		checkMessages(t, fmt.Sprintf("Retained after %s-%d", foreign, off), snap.Retained, []*pubsub.Message{state, other})
	}

	// An exact resume replays history and nothing else.
	for _, after := range []uint64{h.Offset, other.Pos.Offset - 1} {
		snap = read(t, b, at(e, after), "job", "other", "plain")
		if snap.Truncated || snap.EpochChanged {
			t.Fatalf("after %d: Truncated=%v EpochChanged=%v, want an exact resume", after, snap.Truncated, snap.EpochChanged)
		}
		if len(snap.Retained) != 0 {
			t.Errorf("after %d (an exact resume): Retained %v, want none", after, offsets(snap.Retained))
		}
	}
}
