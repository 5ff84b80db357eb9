package pubsubtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

// batchOf returns b's BatchPublisher, or skips the test.
func batchOf(t *testing.T, b pubsub.Broker) pubsub.BatchPublisher {
	t.Helper()
	bp, ok := b.(pubsub.BatchPublisher)
	if !ok {
		t.Skip("the broker does not implement pubsub.BatchPublisher")
	}
	return bp
}

// testBatch: PublishBatch has the effect of Publish called for each
// message in order: fields, retained and final state, several topics,
// IDs (a batch's repeated ID, and an ID published before the batch, answer
// the first position and store nothing), and a message to a finished
// topic stops the batch there, with ErrTopicFinished and the count of the
// messages before it.
func (s *suite) testBatch(t *testing.T) {
	b := s.open(t, pubsub.Retention{})
	bp := batchOf(t, b)
	rec := s.listen(t, b, b)
	dedupe := !s.o.NoDedupe
	prior := publish(t, b, &pubsub.Message{Topics: []string{"ba"}, Data: "before", ID: "b-old"})

	batch := []*pubsub.Message{
		{Topics: []string{"ba"}, Data: "0"},
		{Topics: []string{"ba", "bb"}, Type: "state", Data: "1 retained", Retain: true, Private: true,
			Meta: map[string]string{"p.k": "v"}, Also: []string{"elsewhere"}},
		{Topics: []string{"bc"}, Data: "2", ID: "b-x"},
		{Topics: []string{"ba"}, Data: "3 (the ID of 2 again)", ID: "b-x"},
		{Topics: []string{"ba"}, Data: "4 (the ID published before)", ID: "b-old"},
		{Topics: []string{"bb", "bc"}, Type: "end", Data: "5 final", Final: true},
		{Topics: []string{"ba"}, Data: "6 " + strings.Repeat("x", 300)},
		{Topics: []string{"ba", "bc"}, Data: "7 to a finished topic"},
		{Topics: []string{"ba"}, Data: "8 never published"},
	}
	n, err := bp.PublishBatch(t.Context(), batch)
	if !isFinished(err) || n != 7 {
		t.Fatalf("PublishBatch = %d, %v; want 7, ErrTopicFinished (message 7 goes to a finished topic)", n, err)
	}
	stored := []*pubsub.Message{prior, batch[0], batch[1], batch[2], batch[5], batch[6]}
	if !dedupe {
		stored = []*pubsub.Message{prior, batch[0], batch[1], batch[2], batch[3], batch[4], batch[5], batch[6]}
	}
	for i := 1; i < len(stored); i++ {
		if stored[i].Pos.Epoch != b.Epoch() || stored[i].Pos.Offset <= stored[i-1].Pos.Offset {
			t.Fatalf("stored message %d at %v, not after %v", i, stored[i].Pos, stored[i-1].Pos)
		}
	}
	if dedupe {
		if batch[3].Pos != batch[2].Pos {
			t.Errorf("an ID repeated in a batch: Pos %v, want the first one's %v", batch[3].Pos, batch[2].Pos)
		}
		if batch[4].Pos != prior.Pos {
			t.Errorf("an ID published before the batch: Pos %v, want the first one's %v", batch[4].Pos, prior.Pos)
		}
	}
	if !batch[7].Pos.IsZero() || !batch[8].Pos.IsZero() {
		t.Errorf("messages after the refused one have positions %v, %v; want none", batch[7].Pos, batch[8].Pos)
	}

	snap := read(t, b, at(b.Epoch(), 0), "ba", "bb", "bc")
	checkMessages(t, "Read after the batch", snap.Events, stored)
	if len(snap.Events) > 2 {
		got := snap.Events[2]
		if got.Meta["p.k"] != "v" || len(got.Also) != 1 || got.Also[0] != "elsewhere" {
			t.Errorf("stored message 1: Meta %v, Also %v; want them as published", got.Meta, got.Also)
		}
	}
	want := map[string]pubsub.Position{"bb": batch[5].Pos, "bc": batch[5].Pos}
	if len(snap.Finals) != 2 || snap.Finals["bb"] != want["bb"] || snap.Finals["bc"] != want["bc"] {
		t.Errorf("Finals %v, want %v", snap.Finals, want)
	}
	fresh := read(t, b, nil, "ba", "bb")
	checkMessages(t, "Retained for a new subscriber", fresh.Retained, []*pubsub.Message{batch[1]})
	if !rec.waitFor(t, batch[6].Pos, s.o.Wait) {
		t.Fatalf("Listen: the batch's last message not received within %v", s.o.Wait)
	}
	checkMessages(t, "Listen", withTopic(rec.messages(), "ba", "bb", "bc"), stored)

	// The rest of the batch, once the refused message is left out.
	n, err = bp.PublishBatch(t.Context(), batch[8:])
	if err != nil || n != 1 {
		t.Fatalf("PublishBatch of the rest = %d, %v; want 1, nil", n, err)
	}
	if batch[8].Pos.Offset <= batch[6].Pos.Offset {
		t.Errorf("the next batch at %v, not after %v", batch[8].Pos, batch[6].Pos)
	}
	// A batch whose first message is refused publishes nothing.
	h := head(t, b)
	n, err = bp.PublishBatch(t.Context(), []*pubsub.Message{msg("no", "bb"), msg("no", "ba")})
	if !isFinished(err) || n != 0 {
		t.Errorf("PublishBatch starting with a finished topic = %d, %v; want 0, ErrTopicFinished", n, err)
	}
	if got := head(t, b); got != h {
		t.Errorf("Head moved from %v to %v after a refused batch", h, got)
	}
	if n, err := bp.PublishBatch(t.Context(), nil); n != 0 || err != nil {
		t.Errorf("PublishBatch(nil) = %d, %v; want 0, nil", n, err)
	}
	if ep := rec.epochCalls(); len(ep) != 0 {
		t.Errorf("HandleEpoch called with %v during batches; want no call", ep)
	}
}

// testBatchRetention: a batch that holds more messages of a topic than
// its history keeps is delivered live whole and in order (no message is
// lost to a listener because the batch evicted it), and history then
// holds what Publish called for each message would have left: the newest
// MaxEvents of each topic, older ones reported as truncated.
func (s *suite) testBatchRetention(t *testing.T) {
	if s.o.NoMaxEvents {
		t.Skip("the broker does not enforce MaxEvents (NoMaxEvents)")
	}
	b := s.open(t, pubsub.Retention{MaxEvents: 3})
	bp := batchOf(t, b)
	rec := s.listen(t, b, b)
	start := head(t, b)
	var batch []*pubsub.Message
	for i := range 40 {
		topics := []string{"br1"}
		if i%4 == 0 {
			// (Not with br1: a broker may keep a message of several topics
			// as long as one of them holds it.)
			topics = []string{fmt.Sprint("br", 2+i%3)}
		}
		batch = append(batch, msg(fmt.Sprint(i), topics...))
	}
	for round := range 2 {
		n, err := bp.PublishBatch(t.Context(), batch[20*round:20*round+20])
		if err != nil || n != 20 {
			t.Fatalf("PublishBatch round %d = %d, %v; want 20, nil", round, n, err)
		}
	}
	last := batch[len(batch)-1].Pos
	if !rec.waitFor(t, last, s.o.Wait) {
		t.Fatalf("Listen: the last message not received within %v", s.o.Wait)
	}
	checkMessages(t, "Listen", withTopic(rec.messages(), "br1", "br2", "br3", "br4"), batch)
	if ep := rec.epochCalls(); len(ep) != 0 {
		t.Errorf("HandleEpoch called with %v: the listener missed messages of a batch", ep)
	}
	snap := read(t, b, &start, "br1")
	checkMessages(t, "history of br1", snap.Events, withTopic(batch, "br1")[27:])
	if !snap.Truncated {
		t.Error("history of br1 after 30 messages with MaxEvents 3: Truncated false")
	}
	snap = read(t, b, &start, "br2")
	checkMessages(t, "history of br2", snap.Events, withTopic(batch, "br2")[1:])
}
