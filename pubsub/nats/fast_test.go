package nats_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/internal/codec"
	"github.com/heraldpush/herald/pubsub/nats"
)

// rawMsg is a stored message as JetStream holds it.
type rawMsg struct {
	seq     uint64
	subject string
	prev    uint64
	data    string // the event's data (none for a marker)
	marker  string
}

// rawStream reads every message the stream holds, in order.
func rawStream(t *testing.T, stream string) []rawMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := openStream(t, ctx, stream)
	lastSeq := s.CachedInfo().State.LastSeq
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []rawMsg
	for len(out) == 0 || out[len(out)-1].seq < lastSeq {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			prev, _ := strconv.ParseUint(m.Headers().Get("Herald-Prev"), 10, 64)
			r := rawMsg{seq: md.Sequence.Stream, subject: m.Subject(), prev: prev, marker: m.Headers().Get("Herald-Marker")}
			if r.marker == "" {
				dm, err := codec.Decode(m.Data())
				if err != nil {
					t.Fatalf("message %d: %v", r.seq, err)
				}
				r.data = dm.Data
			}
			out = append(out, r)
		}
		if n == 0 {
			t.Fatalf("the stream's messages stopped at %d of %d", len(out), lastSeq)
		}
	}
	return out
}

// checkChain fails unless every stored message names the previous message
// on its subject (Herald-Prev), and returns the messages by subject.
func checkChain(t *testing.T, msgs []rawMsg) map[string][]rawMsg {
	t.Helper()
	by := map[string][]rawMsg{}
	for _, m := range msgs {
		var want uint64
		if prev := by[m.subject]; len(prev) > 0 {
			want = prev[len(prev)-1].seq
		}
		if m.prev != want {
			t.Errorf("message %d on %s names %d as its predecessor, want %d", m.seq, m.subject, m.prev, want)
		}
		by[m.subject] = append(by[m.subject], m)
	}
	return by
}

// TestFastBatchesKeepTheChain: a node publishing alone sends its batches
// with the stream's expected last sequence (no per-subject check); two
// nodes publishing batches on the same topics at once, on two connections,
// store every message once and keep each subject's Herald-Prev chain
// exact; a topic finished by the other node is refused to the fast path.
func TestFastBatchesKeepTheChain(t *testing.T) {
	needNATS(t)
	name := uniqueStream(t, natsURL())
	a := open(t, natsURL(), name, pubsub.Retention{})
	defer a.Close()
	c := open(t, natsURL(), name, pubsub.Retention{})
	defer c.Close()
	ctx := context.Background()
	const topics = 50
	batch := func(node string, i int) []*pubsub.Message {
		msgs := make([]*pubsub.Message, topics)
		for j := range msgs {
			msgs[j] = &pubsub.Message{Topics: []string{fmt.Sprint("t", j)}, Data: fmt.Sprintf("%s-%d-%d", node, i, j)}
		}
		return msgs
	}
	publish := func(b *nats.Broker, node string, from, n int) error {
		for i := from; i < from+n; i++ {
			if k, err := b.PublishBatch(ctx, batch(node, i)); err != nil || k != topics {
				return fmt.Errorf("%s batch %d: %d published: %w", node, i, k, err)
			}
		}
		return nil
	}

	// Alone: after the first wave, the others are fast.
	if err := publish(a, "a", 0, 5); err != nil {
		t.Fatal(err)
	}
	if n := nats.FastSent(a); n < 4*topics {
		t.Fatalf("a node publishing alone sent %d messages with the stream's expectation, want at least %d", n, 4*topics)
	}

	// The other node warms up (its first publish on a subject reads the
	// subject first), then both publish at once on the same topics.
	if err := publish(c, "c", 0, 1); err != nil {
		t.Fatal(err)
	}
	// switches counts where the stream passes from one node's messages to
	// the other's.
	switches := func(msgs []rawMsg) int {
		n := 0
		for i := 1; i < len(msgs); i++ {
			if msgs[i].data[:1] != msgs[i-1].data[:1] {
				n++
			}
		}
		return n
	}
	// Rounds of both at once, until their messages interleave (a node
	// whose wave collides on every subject may wait for the other's
	// whole round: then the round tested nothing).
	na, nc := 5, 1 // the next batch of each
	for round := 0; ; round++ {
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, p := range []struct {
			b    *nats.Broker
			node string
			from int
		}{{a, "a", na}, {c, "c", nc}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- publish(p.b, p.node, p.from, 20)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		na, nc = na+20, nc+20
		if n := switches(rawStream(t, name)); n >= 4 {
			t.Logf("round %d: the nodes' messages alternate %d times", round, n)
			break
		}
		if round == 4 {
			t.Fatal("in 5 rounds the two nodes never published at once: this tested nothing")
		}
	}
	// a alone again: fast once the other node's messages are behind it.
	if err := publish(a, "a", na, 5); err != nil {
		t.Fatal(err)
	}
	na += 5

	msgs := rawStream(t, name)
	checkChain(t, msgs)
	seen := map[string]int{}
	for _, m := range msgs {
		seen[m.data]++
	}
	want := 0
	for _, node := range []struct {
		name string
		to   int
	}{{"a", na}, {"c", nc}} {
		for i := range node.to {
			for j := range topics {
				want++
				if key := fmt.Sprintf("%s-%d-%d", node.name, i, j); seen[key] != 1 {
					t.Errorf("%q stored %d times, want once", key, seen[key])
				}
			}
		}
	}
	if len(msgs) != want {
		t.Errorf("the stream holds %d messages, want %d", len(msgs), want)
	}
	t.Logf("a sent %d of its %d messages without the per-subject check", nats.FastSent(a), na*topics)

	// The other node finishes t0; a's next batch on it is refused.
	fin, err := c.Publish(ctx, &pubsub.Message{Topics: []string{"t0"}, Data: "the end", Final: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.PublishBatch(ctx, batch("a", na))
	if !errors.Is(err, pubsub.ErrTopicFinished) {
		t.Fatalf("a batch on a topic the other node finished: %v, want ErrTopicFinished", err)
	}
	snap, err := a.Read(ctx, pubsub.Query{Topics: []string{"t0"}, After: &fin})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Events) != 0 {
		t.Fatalf("%d events stored on t0 after its final message", len(snap.Events))
	}
}
