package pubsubtest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

// The tests of pubsub.Conditional (ReadTopic, PublishIf), run for every
// broker that implements it; the others skip them, saying so.

// conditional opens a fresh broker and returns it as a pubsub.Conditional,
// or skips the test when the broker does not implement it.
func (s *suite) conditional(t *testing.T) (pubsub.Broker, pubsub.Conditional) {
	t.Helper()
	b := s.open(t, pubsub.Retention{})
	c, ok := b.(pubsub.Conditional)
	if !ok {
		t.Skipf("broker %T does not implement pubsub.Conditional: the conditional tests are skipped", b)
	}
	return b, c
}

// readTopic calls ReadTopic and fails the test on error.
func readTopic(t *testing.T, c pubsub.Conditional, topic string, after pubsub.Position, limit int) ([]*pubsub.Message, pubsub.Position) {
	t.Helper()
	msgs, tail, err := c.ReadTopic(context.Background(), topic, after, limit)
	if err != nil {
		t.Fatalf("ReadTopic(%q after %v, limit %d): %v", topic, after, limit, err)
	}
	for i, m := range msgs {
		if !m.HasTopic(topic) {
			t.Fatalf("ReadTopic(%q): message %v has topics %q", topic, m.Pos, m.Topics)
		}
		if i > 0 && m.Pos.Offset <= msgs[i-1].Pos.Offset {
			t.Fatalf("ReadTopic(%q): positions %v not increasing", topic, offsets(msgs))
		}
		if !after.IsZero() && m.Pos.Offset <= after.Offset {
			t.Fatalf("ReadTopic(%q after %v) returned %v", topic, after, m.Pos)
		}
		if tail.IsZero() || m.Pos.Offset > tail.Offset || m.Pos.Epoch != tail.Epoch {
			t.Fatalf("ReadTopic(%q): message %v beyond the tail %v", topic, m.Pos, tail)
		}
	}
	return msgs, tail
}

// publishIf calls PublishIf and fails the test on error.
func publishIf(t *testing.T, c pubsub.Conditional, tail pubsub.Position, m *pubsub.Message) *pubsub.Message {
	t.Helper()
	pos, err := c.PublishIf(context.Background(), tail, m)
	if err != nil {
		t.Fatalf("PublishIf(%v, %q): %v", tail, m.Topics, err)
	}
	if pos != m.Pos || pos.Offset == 0 || m.Time.IsZero() {
		t.Fatalf("PublishIf returned %v, set m.Pos %v and m.Time %v", pos, m.Pos, m.Time)
	}
	if !tail.IsZero() && pos.Offset <= tail.Offset {
		t.Fatalf("PublishIf after %v appended at %v", tail, pos)
	}
	return m
}

// wantConflict checks that PublishIf with tail fails with ErrConflict and
// appends nothing.
func wantConflict(t *testing.T, c pubsub.Conditional, tail pubsub.Position, topic string) {
	t.Helper()
	_, before := readTopic(t, c, topic, pubsub.Position{}, 0)
	m := msg("must not be stored", topic)
	pos, err := c.PublishIf(context.Background(), tail, m)
	if !errors.Is(err, pubsub.ErrConflict) {
		t.Fatalf("PublishIf(%v) on %q whose tail is %v: %v at %v, want ErrConflict", tail, topic, before, err, pos)
	}
	if _, after := readTopic(t, c, topic, pubsub.Position{}, 0); after != before {
		t.Fatalf("a refused PublishIf moved the tail of %q from %v to %v", topic, before, after)
	}
}

// sameStored reports how a stored message differs from the published one,
// including what subscribers do not see (ID, Meta).
func sameStored(got, want *pubsub.Message) string {
	d := sameMessage(got, want)
	var more []string
	if d != "" {
		more = append(more, d)
	}
	if got != nil && got.ID != want.ID {
		more = append(more, fmt.Sprintf("ID %q, want %q", got.ID, want.ID))
	}
	if got != nil && fmt.Sprint(got.Meta) != fmt.Sprint(want.Meta) {
		more = append(more, fmt.Sprintf("Meta %v, want %v", got.Meta, want.Meta))
	}
	return strings.Join(more, "; ")
}

// binaryData holds every byte value, NULs and invalid UTF-8.
func binaryData() string {
	var b []byte
	for i := range 256 {
		b = append(b, byte(i))
	}
	b = append(b, 0, 0, 0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82, '\n', '\r', 0x80, 0)
	for i := 255; i >= 0; i-- {
		b = append(b, byte(i))
	}
	return string(b)
}

// testCondEmpty: an empty topic has no message and the zero tail; PublishIf
// with the zero tail appends to it, and again with the zero tail conflicts.
func (s *suite) testCondEmpty(t *testing.T) {
	_, c := s.conditional(t)
	msgs, tail := readTopic(t, c, "cond.empty", pubsub.Position{}, 0)
	if len(msgs) != 0 || !tail.IsZero() {
		t.Fatalf("empty topic: %d messages, tail %v; want none and the zero Position", len(msgs), tail)
	}
	first := publishIf(t, c, pubsub.Position{}, msg("first", "cond.empty"))
	msgs, tail = readTopic(t, c, "cond.empty", pubsub.Position{}, 0)
	if tail != first.Pos {
		t.Fatalf("tail %v after the first append at %v", tail, first.Pos)
	}
	checkMessages(t, "after the first append", msgs, []*pubsub.Message{first})
	wantConflict(t, c, pubsub.Position{}, "cond.empty")
}

// testCondAppend: the right tail appends, a wrong one (stale, ahead, zero)
// appends nothing; fields, binary data, Meta and ID round-trip exactly,
// and the ID does not deduplicate.
func (s *suite) testCondAppend(t *testing.T) {
	b, c := s.conditional(t)
	const topic = "cond.append"
	data := binaryData()
	var all []*pubsub.Message
	tail := pubsub.Position{}
	for i := range 4 {
		m := &pubsub.Message{
			Topics: []string{topic},
			Type:   fmt.Sprintf("type-%d", i),
			Data:   fmt.Sprint(i) + data,
			ID:     "same-id", // PublishIf does not deduplicate by ID
			Meta:   map[string]string{"ds.seq": fmt.Sprint(i), "ds.bin": "\x00\xff" + fmt.Sprint(i)},
		}
		if i == 3 {
			m.Meta = nil
			m.ID = ""
			m.Data = ""
		}
		publishIf(t, c, tail, m)
		if e := pubsub.LogOf(b, topic).Epoch(); m.Pos.Epoch != e {
			t.Fatalf("appended at %v, want epoch %q", m.Pos, e)
		}
		if i > 0 {
			wantConflict(t, c, tail, topic) // the previous tail: stale now
		}
		tail = m.Pos
		all = append(all, m)
	}
	wantConflict(t, c, pubsub.Position{}, topic)
	wantConflict(t, c, pubsub.Position{Epoch: tail.Epoch, Offset: tail.Offset + 1}, topic)
	wantConflict(t, c, pubsub.Position{Epoch: tail.Epoch, Offset: tail.Offset - 1}, topic)
	msgs, got := readTopic(t, c, topic, pubsub.Position{}, 0)
	if got != tail {
		t.Fatalf("tail %v, want %v", got, tail)
	}
	if len(msgs) != len(all) {
		t.Fatalf("ReadTopic: %d messages %v, want %d %v", len(msgs), offsets(msgs), len(all), offsets(all))
	}
	for i := range all {
		if d := sameStored(msgs[i], all[i]); d != "" {
			t.Errorf("message %d: %s", i, d)
		}
	}
	// Through Read too: one log.
	snap := read(t, b, at(pubsub.LogOf(b, topic).Epoch(), 0), topic)
	checkMessages(t, "Read", snap.Events, all)
}

// testCondLive: messages appended by PublishIf are delivered live.
func (s *suite) testCondLive(t *testing.T) {
	b, c := s.conditional(t)
	rec := s.listen(t, b, b)
	var all []*pubsub.Message
	tail := pubsub.Position{}
	for i := range 5 {
		m := publishIf(t, c, tail, &pubsub.Message{Topics: []string{"cond.live"}, Data: fmt.Sprint(i) + binaryData()})
		tail = m.Pos
		all = append(all, m)
	}
	if !rec.waitFor(t, tail, s.o.Wait) {
		t.Fatalf("Listen: the last append not received within %v", s.o.Wait)
	}
	checkMessages(t, "live", withTopic(rec.messages(), "cond.live"), all)
}

// testCondReadTopic: after and limit select a window of the topic's
// messages; the tail is the newest whatever the window.
func (s *suite) testCondReadTopic(t *testing.T) {
	_, c := s.conditional(t)
	const topic = "cond.read"
	var all []*pubsub.Message
	tail := pubsub.Position{}
	for i := range 10 {
		m := publishIf(t, c, tail, msg(fmt.Sprint(i), topic))
		tail = m.Pos
		all = append(all, m)
	}
	for _, tc := range []struct {
		after pubsub.Position
		limit int
		want  []*pubsub.Message
		what  string
	}{
		{pubsub.Position{}, 0, all, "all"},
		{pubsub.Position{}, -1, all, "negative limit"},
		{pubsub.Position{}, 3, all[:3], "first page"},
		{all[2].Pos, 4, all[3:7], "a middle page"},
		{all[6].Pos, 4, all[7:], "the last page, short"},
		{all[8].Pos, 0, all[9:], "after the one before the tail"},
		{tail, 5, nil, "after the tail"},
		{pubsub.Position{Epoch: tail.Epoch, Offset: tail.Offset + 100}, 0, nil, "after a later position"},
		{pubsub.Position{Epoch: tail.Epoch, Offset: 0}, 2, all[:2], "offset 0 of the epoch"},
	} {
		msgs, got := readTopic(t, c, topic, tc.after, tc.limit)
		if got != tail {
			t.Errorf("%s: tail %v, want %v", tc.what, got, tail)
		}
		checkMessages(t, tc.what, msgs, tc.want)
	}
	// Paging to the end finds each message once.
	var paged []*pubsub.Message
	after := pubsub.Position{}
	for range 20 {
		page, _ := readTopic(t, c, topic, after, 3)
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1].Pos
	}
	checkMessages(t, "paged", paged, all)
}

// testCondOtherTopics: messages of other topics leave a topic's tail where
// it is; a Publish to the topic moves it (one tail, whoever appends), and
// a message of several topics belongs to each.
func (s *suite) testCondOtherTopics(t *testing.T) {
	b, c := s.conditional(t)
	const topic = "cond.mine"
	first := publishIf(t, c, pubsub.Position{}, msg("1", topic))
	publish(t, b, msg("x", "cond.other"))
	publish(t, b, msg("y", "cond.other", "cond.third"))
	publishIf(t, c, pubsub.Position{}, msg("z", "cond.other.two"))
	msgs, tail := readTopic(t, c, topic, pubsub.Position{}, 0)
	if tail != first.Pos {
		t.Fatalf("tail %v after other topics' messages, want %v", tail, first.Pos)
	}
	checkMessages(t, "own messages", msgs, []*pubsub.Message{first})
	second := publishIf(t, c, tail, msg("2", topic))
	// A plain Publish to the topic, with another topic (the conditional
	// topic first, as Durable Streams never publish otherwise).
	third := publish(t, b, msg("3", topic, "cond.other"))
	wantConflict(t, c, second.Pos, topic)
	msgs, tail = readTopic(t, c, topic, pubsub.Position{}, 0)
	if tail != third.Pos {
		t.Fatalf("tail %v after a Publish at %v", tail, third.Pos)
	}
	// (A sharded broker stores the message of both topics as one copy per
	// shard, with the shard's topics: compare the third by position.)
	if len(msgs) != 3 || msgs[2].Pos != third.Pos || msgs[2].Data != third.Data {
		t.Fatalf("after a Publish: messages %v, want %v", offsets(msgs), offsets([]*pubsub.Message{first, second, third}))
	}
	checkMessages(t, "after a Publish", msgs[:2], []*pubsub.Message{first, second})
	fourth := publishIf(t, c, tail, msg("4", topic))
	// The message of both is the other topic's newest too (a copy, at a
	// position of its own, when the topics are on different shards).
	if msgs, other, err := c.ReadTopic(context.Background(), "cond.other", pubsub.Position{}, 0); err != nil && !s.o.CondOwnTopics {
		t.Errorf("ReadTopic of the other topic: %v", err)
	} else if err == nil && (len(msgs) == 0 || msgs[len(msgs)-1].Data != "3" || other != msgs[len(msgs)-1].Pos) {
		t.Errorf("the other topic: messages %v, tail %v; want the message of both (%v) newest", offsets(msgs), other, third.Pos)
	}
	_, tail = readTopic(t, c, topic, pubsub.Position{}, 0)
	if tail != fourth.Pos {
		t.Errorf("tail %v, want %v", tail, fourth.Pos)
	}
}

// testCondFinal: a final message appended by PublishIf finishes the topic:
// later PublishIf and Publish fail with ErrTopicFinished and store nothing.
func (s *suite) testCondFinal(t *testing.T) {
	b, c := s.conditional(t)
	const topic = "cond.final"
	one := publishIf(t, c, pubsub.Position{}, msg("1", topic))
	end := msg("end", topic)
	end.Final = true
	publishIf(t, c, one.Pos, end)
	_, err := c.PublishIf(context.Background(), end.Pos, msg("after the end", topic))
	if !errors.Is(err, pubsub.ErrTopicFinished) {
		t.Fatalf("PublishIf with the final message as tail: %v, want ErrTopicFinished", err)
	}
	if _, err := b.Publish(context.Background(), msg("after the end", topic)); !isFinished(err) {
		t.Fatalf("Publish after a final PublishIf: %v, want ErrTopicFinished", err)
	}
	msgs, tail := readTopic(t, c, topic, pubsub.Position{}, 0)
	if tail != end.Pos {
		t.Fatalf("tail %v, want the final message %v", tail, end.Pos)
	}
	checkMessages(t, "finished topic", msgs, []*pubsub.Message{one, end})
	if snap := read(t, b, nil, topic); snap.Finals[topic] != end.Pos {
		t.Errorf("Finals %v, want %s at %v", snap.Finals, topic, end.Pos)
	}
}

// testCondPurge: after Purge the topic has the zero tail and is not
// finished: PublishIf with the zero tail appends, the old tail conflicts.
func (s *suite) testCondPurge(t *testing.T) {
	b, c := s.conditional(t)
	p, ok := b.(pubsub.Purger)
	if !ok {
		t.Skip("broker does not implement pubsub.Purger")
	}
	const topic = "cond.purge"
	one := publishIf(t, c, pubsub.Position{}, msg("1", topic))
	end := msg("end", topic)
	end.Final = true
	publishIf(t, c, one.Pos, end)
	if err := p.Purge(context.Background(), topic); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	msgs, tail := readTopic(t, c, topic, pubsub.Position{}, 0)
	if len(msgs) != 0 || !tail.IsZero() {
		t.Fatalf("purged topic: %d messages, tail %v; want none and the zero Position", len(msgs), tail)
	}
	wantConflict(t, c, end.Pos, topic)
	again := publishIf(t, c, pubsub.Position{}, msg("again", topic))
	if again.Pos.Offset <= end.Pos.Offset {
		t.Errorf("appended after the purge at %v, not after %v", again.Pos, end.Pos)
	}
	msgs, tail = readTopic(t, c, topic, pubsub.Position{}, 0)
	if tail != again.Pos {
		t.Errorf("tail %v, want %v", tail, again.Pos)
	}
	checkMessages(t, "after the purge", msgs, []*pubsub.Message{again})
}

// testCondEpoch: a position of another epoch is ErrEpochChanged for
// ReadTopic and a conflict for PublishIf.
func (s *suite) testCondEpoch(t *testing.T) {
	b, c := s.conditional(t)
	const topic = "cond.epoch"
	one := publishIf(t, c, pubsub.Position{}, msg("1", topic))
	foreign := pubsub.NewEpoch()
	for foreign == pubsub.LogOf(b, topic).Epoch() {
		foreign = pubsub.NewEpoch()
	}
	for _, off := range []uint64{0, one.Pos.Offset, 1 << 40} {
		after := pubsub.Position{Epoch: foreign, Offset: off}
		msgs, tail, err := c.ReadTopic(context.Background(), topic, after, 0)
		if !errors.Is(err, pubsub.ErrEpochChanged) {
			t.Errorf("ReadTopic after %v: %d messages, tail %v, %v; want ErrEpochChanged", after, len(msgs), tail, err)
		}
	}
	wantConflict(t, c, pubsub.Position{Epoch: foreign, Offset: one.Pos.Offset}, topic)
	publishIf(t, c, one.Pos, msg("2", topic))
}
