package pubsubtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
)

// testEpoch: the epoch is valid, stable, used by positions, and a fresh log
// gets a new one.
func (s *suite) testEpoch(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	e := b.Epoch()
	if !pubsub.ValidEpoch(e) {
		t.Fatalf("Epoch() = %q, not a valid epoch", e)
	}
	m := publish(t, b, msg("x", "a"))
	if m.Pos.Epoch != e {
		t.Errorf("published at %v, want epoch %q", m.Pos, e)
	}
	if h := head(t, b); h.Epoch != e {
		t.Errorf("snapshot Head %v, want epoch %q", h, e)
	}
	if b.Epoch() != e {
		t.Errorf("Epoch() changed from %q to %q", e, b.Epoch())
	}
	if _, err := pubsub.ParsePosition(m.Pos.String()); err != nil {
		t.Errorf("position %v does not round-trip as an event id: %v", m.Pos, err)
	}
	b2 := s.open(t, pubsub.Retention{})
	if b2.Epoch() == e {
		t.Errorf("two fresh logs share the epoch %q", e)
	}
}

// testPublishPositions: Publish sets Pos and Time; offsets strictly increase
// from 1 in a fresh log, whatever the topics.
func (s *suite) testPublishPositions(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	start := s.start(t, b)
	before := time.Now()
	last := start
	for i := range 20 {
		m := publish(t, b, msg(fmt.Sprint(i), fmt.Sprintf("t%d", i%3)))
		if m.Pos.Offset <= last {
			t.Fatalf("message %d at %v, not after %d", i, m.Pos, last)
		}
		if i == 0 && m.Pos.Offset != start+1 {
			t.Errorf("first message of a fresh log at offset %d, want %d", m.Pos.Offset, start+1)
		}
		last = m.Pos.Offset
		if m.Time.Before(before.Add(-time.Minute)) || m.Time.After(time.Now().Add(time.Minute)) {
			t.Errorf("message %d: Time %v is not about now (%v)", i, m.Time, before)
		}
	}
	if h := head(t, b); h.Offset != last {
		t.Errorf("Head %v, want offset %d (the last message)", h, last)
	}
}

// testPublishNoTopic: a message needs a topic.
func (s *suite) testPublishNoTopic(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	start := s.start(t, b)
	if _, err := b.Publish(t.Context(), &pubsub.Message{Data: "x"}); err == nil {
		t.Error("Publish without a topic succeeded, want an error")
	}
	if h := head(t, b); h.Offset != start {
		t.Errorf("Head %v after a refused publish, want offset %d", h, start)
	}
}

// testFields: every field of a message survives storage and live delivery.
func (s *suite) testFields(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	rec := s.listen(t, b, b)
	want := []*pubsub.Message{
		{Topics: []string{"f1"}, Data: ""},
		{Topics: []string{"f1"}, Type: "update", Data: "line 1\nline 2\r\nline 3\r"},
		{Topics: []string{"f2", "f1"}, Data: "héllo wörld ✓ \x00 \t", Private: true},
		{Topics: []string{"f1"}, Data: `{"json": [1, 2, "three"]}`, Retain: true},
		{Topics: []string{"f2"}, Type: "end", Data: "bye", Final: true, Retain: true},
		{Topics: []string{"topic with spaces/and:colons.é"}, Data: strings.Repeat("0123456789abcdef", 4<<10)},
		{Topics: []string{"wild.*.>", "f1"}, Data: "subject-like topic names are plain names"},
	}
	for _, m := range want {
		publish(t, b, m)
	}
	snap := read(t, b, at(b.Epoch(), 0), "f1", "f2", "topic with spaces/and:colons.é", "wild.*.>")
	checkMessages(t, "Read", snap.Events, want)
	if !rec.waitFor(t, want[len(want)-1].Pos, s.o.Wait) {
		t.Fatalf("Listen: last message not received within %v", s.o.Wait)
	}
	checkMessages(t, "Listen", rec.messages(), want)
}

// testOrdering: one log orders every topic; Read and Listen agree with
// publish order.
func (s *suite) testOrdering(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	rec := s.listen(t, b, b)
	topics := []string{"o1", "o2", "o3"}
	var all []*pubsub.Message
	for i := range 60 {
		ts := []string{topics[i%3]}
		if i%5 == 0 {
			ts = append(ts, topics[(i+1)%3])
		}
		all = append(all, publish(t, b, msg(fmt.Sprint(i), ts...)))
	}
	last := all[len(all)-1].Pos
	if !rec.waitFor(t, last, s.o.Wait) {
		t.Fatalf("Listen: last message not received within %v", s.o.Wait)
	}
	checkMessages(t, "Listen", rec.messages(), all)
	snap := read(t, b, at(b.Epoch(), 0), topics...)
	if snap.Head != last {
		t.Errorf("Head %v, want %v", snap.Head, last)
	}
	checkMessages(t, "Read all topics", snap.Events, all)
	for _, topic := range topics {
		snap := read(t, b, at(b.Epoch(), 0), topic)
		checkMessages(t, "Read "+topic, snap.Events, withTopic(all, topic))
	}
}

// testSnapshotEmpty: a fresh log has nothing, and nothing is wrong with it.
func (s *suite) testSnapshotEmpty(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	start := s.start(t, b)
	for _, after := range []*pubsub.Position{nil, at(b.Epoch(), 0)} {
		snap := read(t, b, after, "e1", "e2")
		if want := (pubsub.Position{Epoch: b.Epoch(), Offset: start}); snap.Head != want {
			t.Errorf("after %v: Head %v, want %v", after, snap.Head, want)
		}
		if len(snap.Events) != 0 || len(snap.Retained) != 0 || len(snap.Finals) != 0 || snap.EpochChanged || snap.Truncated {
			t.Errorf("after %v: snapshot of an empty log is %+v, want empty", after, snap)
		}
	}
}

// testSnapshotAfter: Events are the query topics' messages after the
// position, each once, in order, up to Head.
func (s *suite) testSnapshotAfter(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	var all []*pubsub.Message
	add := func(data string, topics ...string) *pubsub.Message {
		m := publish(t, b, msg(data, topics...))
		all = append(all, m)
		return m
	}
	add("1", "a")
	m2 := add("2", "b")
	add("3", "a", "b")
	add("4", "c")
	add("5", "b", "c", "a")
	m6 := add("6", "a")
	add("7", "c")
	h := all[len(all)-1].Pos

	for _, tc := range []struct {
		name   string
		after  uint64
		topics []string
	}{
		{"all from start", 0, []string{"a", "b", "c"}},
		{"two topics from start", 0, []string{"a", "b"}},
		{"two topics from middle", m2.Pos.Offset, []string{"b", "a"}},
		{"one topic from middle", m2.Pos.Offset, []string{"a"}},
		{"topic without messages", 0, []string{"zzz"}},
		{"after the last message of the topics", m6.Pos.Offset, []string{"a", "b"}},
		{"at head", h.Offset, []string{"a", "b", "c"}},
	} {
		snap := read(t, b, at(b.Epoch(), tc.after), tc.topics...)
		var want []*pubsub.Message
		for _, m := range withTopic(all, tc.topics...) {
			if m.Pos.Offset > tc.after {
				want = append(want, m)
			}
		}
		checkMessages(t, tc.name, snap.Events, want)
		if snap.Head != h {
			t.Errorf("%s: Head %v, want %v", tc.name, snap.Head, h)
		}
		if snap.Truncated || snap.EpochChanged || len(snap.Retained) != 0 {
			t.Errorf("%s: Truncated=%v EpochChanged=%v Retained=%d, want false, false, 0", tc.name, snap.Truncated, snap.EpochChanged, len(snap.Retained))
		}
	}

	// A new subscriber (After nil) gets no history.
	snap := read(t, b, nil, "a", "b", "c")
	if len(snap.Events) != 0 {
		t.Errorf("After nil: %d events, want none (new subscribers get no history)", len(snap.Events))
	}
	if snap.Head != h {
		t.Errorf("After nil: Head %v, want %v", snap.Head, h)
	}
}

// testSnapshotRetained: a new subscriber gets the latest retained message of
// each topic, once each, in position order.
func (s *suite) testSnapshotRetained(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	retain := func(data string, topics ...string) *pubsub.Message {
		m := msg(data, topics...)
		m.Retain = true
		return publish(t, b, m)
	}
	retain("r1", "r")
	publish(t, b, msg("plain", "r"))
	both := retain("both", "r", "s")
	publish(t, b, msg("plain", "s"))
	latestS := retain("s2", "s")
	retain("other", "u")
	publish(t, b, msg("plain", "v"))

	snap := read(t, b, nil, "r", "s", "v", "w")
	checkMessages(t, "Retained of r, s, v, w", snap.Retained, []*pubsub.Message{both, latestS})
	if len(snap.Events) != 0 {
		t.Errorf("Events: %d, want none for a new subscriber", len(snap.Events))
	}
	snap = read(t, b, nil, "r")
	checkMessages(t, "Retained of r", snap.Retained, []*pubsub.Message{both})
	snap = read(t, b, nil, "v")
	checkMessages(t, "Retained of v", snap.Retained, nil)
}

// testSnapshotEpochChanged: a position of another epoch is flagged and the
// events start at the beginning of the log.
func (s *suite) testSnapshotEpochChanged(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	var all []*pubsub.Message
	for i := range 5 {
		all = append(all, publish(t, b, msg(fmt.Sprint(i), "ep")))
	}
	publish(t, b, msg("other", "elsewhere"))
	foreign := pubsub.NewEpoch()
	for foreign == b.Epoch() {
		foreign = pubsub.NewEpoch()
	}
	for _, off := range []uint64{0, 3, 1000} {
		snap := read(t, b, at(foreign, off), "ep")
		if !snap.EpochChanged {
			t.Errorf("after %s-%d: EpochChanged false, want true", foreign, off)
		}
		checkMessages(t, fmt.Sprintf("after %s-%d", foreign, off), snap.Events, all)
		if snap.Head.Epoch != b.Epoch() {
			t.Errorf("Head %v, want epoch %q", snap.Head, b.Epoch())
		}
	}
	snap := read(t, b, at(b.Epoch(), 3), "ep")
	if snap.EpochChanged {
		t.Error("own epoch: EpochChanged true")
	}
}

// testFinal: a final message ends its topics: later publishes to them fail
// with ErrTopicFinished and store nothing; snapshots report Finals.
func (s *suite) testFinal(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	publish(t, b, msg("1", "fin"))
	fm := msg("end", "fin", "fin2")
	fm.Final = true
	publish(t, b, fm)
	open := publish(t, b, msg("still open", "open"))
	h := head(t, b)

	for _, topics := range [][]string{{"fin"}, {"fin2"}, {"open", "fin"}} {
		_, err := b.Publish(t.Context(), msg("late", topics...))
		if !isFinished(err) {
			t.Errorf("Publish to %v after final: %v, want ErrTopicFinished", topics, err)
		}
	}
	if got := head(t, b); got != h {
		t.Fatalf("Head moved from %v to %v after refused publishes", h, got)
	}
	snap := read(t, b, at(b.Epoch(), 0), "open")
	checkMessages(t, "open topic after a refused multi-topic publish", snap.Events, []*pubsub.Message{open})
	if len(snap.Finals) != 0 {
		t.Errorf("Finals of an open topic: %v, want none", snap.Finals)
	}
	for _, after := range []*pubsub.Position{nil, at(b.Epoch(), 0), at(b.Epoch(), h.Offset)} {
		snap := read(t, b, after, "fin", "fin2", "open")
		want := map[string]pubsub.Position{"fin": fm.Pos, "fin2": fm.Pos}
		if len(snap.Finals) != 2 || snap.Finals["fin"] != fm.Pos || snap.Finals["fin2"] != fm.Pos {
			t.Errorf("after %v: Finals %v, want %v", after, snap.Finals, want)
		}
	}
	snap = read(t, b, at(b.Epoch(), 0), "fin")
	if n := len(snap.Events); n != 2 || !snap.Events[n-1].Final {
		t.Errorf("history of the finished topic: %v, want 2 messages ending with the final one", offsets(snap.Events))
	}
	// Other topics stay open.
	publish(t, b, msg("more", "open"))
}

// testIdempotent: a message published again with the ID of one published
// before is stored once: Publish answers the first one's position, and
// neither history nor the listener has a second message; another ID is
// another message; Meta and Also are stored as they were.
func (s *suite) testIdempotent(t *testing.T) {
	if s.o.NoDedupe {
		t.Skip("the broker does not keep message IDs (NoDedupe)")
	}
	b := s.open(t, pubsub.Retention{})
	rec := s.listen(t, b, b)
	first := publish(t, b, &pubsub.Message{Topics: []string{"id"}, Data: "1", ID: "evt-1", Meta: map[string]string{"p.k": "v"}, Also: []string{"elsewhere"}})
	again := &pubsub.Message{Topics: []string{"id"}, Data: "1 again", ID: "evt-1"}
	pos, err := b.Publish(context.Background(), again)
	if err != nil {
		t.Fatalf("publishing an ID again: %v", err)
	}
	if pos != first.Pos || again.Pos != first.Pos {
		t.Fatalf("publishing an ID again answered %v (m.Pos %v), want the first position %v", pos, again.Pos, first.Pos)
	}
	other := publish(t, b, &pubsub.Message{Topics: []string{"id"}, Data: "2", ID: "evt-2"})
	plain := publish(t, b, msg("3", "id"))
	snap := read(t, b, at(b.Epoch(), 0), "id")
	checkMessages(t, "history", snap.Events, []*pubsub.Message{first, other, plain})
	if len(snap.Events) > 0 {
		got := snap.Events[0]
		if got.ID != "evt-1" || got.Meta["p.k"] != "v" || len(got.Also) != 1 || got.Also[0] != "elsewhere" {
			t.Errorf("stored message: ID %q, Meta %v, Also %v; want them as published", got.ID, got.Meta, got.Also)
		}
	}
	if !rec.waitFor(t, plain.Pos, s.o.Wait) {
		t.Fatal("the listener did not get the messages")
	}
	checkMessages(t, "live", withTopic(rec.messages(), "id"), []*pubsub.Message{first, other, plain})
}

// start returns the head of a fresh log: 0, unless Options.NotEmpty says
// that the broker writes messages of its own to a fresh log.
func (s *suite) start(t *testing.T, b pubsub.Broker) uint64 {
	t.Helper()
	h := head(t, b)
	if h.Offset != 0 && !s.o.NotEmpty {
		t.Fatalf("fresh log: Head %v, want offset 0", h)
	}
	return h.Offset
}
