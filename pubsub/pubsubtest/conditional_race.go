package pubsubtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
)

// appendRecord is one successful PublishIf of a race: the tail it was
// given and the message it appended.
type appendRecord struct {
	tail pubsub.Position
	m    *pubsub.Message
}

// testCondRace: goroutines race to append to one topic, each with the tail
// it last saw: every tail has exactly one winner, and the topic holds the
// winners, each once, in the order of their tails.
func (s *suite) testCondRace(t *testing.T) {
	b, c := s.conditional(t)
	s.condRace(t, []pubsub.Conditional{c}, b)
}

// testCondPeerRace: the same race between two nodes of one log.
func (s *suite) testCondPeerRace(t *testing.T) {
	if s.o.Peer == nil {
		t.Skip("no Options.Peer")
	}
	b, c := s.conditional(t)
	peer := s.o.Peer(t, b)
	t.Cleanup(func() { _ = peer.Close() })
	pc, ok := peer.(pubsub.Conditional)
	if !ok {
		t.Fatalf("the peer %T does not implement pubsub.Conditional, but the broker does", peer)
	}
	s.condRace(t, []pubsub.Conditional{c, pc}, b)
}

func (s *suite) condRace(t *testing.T, nodes []pubsub.Conditional, b pubsub.Broker) {
	const (
		writers = 8
		target  = 120
	)
	const topic = "cond.race"
	// Another topic is written meanwhile: it must not disturb the race.
	noise := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		defer close(noise)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := b.Publish(context.Background(), msg(fmt.Sprint(i), "cond.race.noise")); err != nil {
				noise <- err
				return
			}
		}
	}()
	var (
		mu       sync.Mutex
		wins     []appendRecord
		won      atomic.Int64
		attempts atomic.Int64
		wg       sync.WaitGroup
	)
	errs := make(chan error, writers)
	deadline := time.Now().Add(6 * s.o.Wait)
	for w := range writers {
		c := nodes[w%len(nodes)]
		wg.Go(func() {
			tail := pubsub.Position{}
			for i := 0; won.Load() < target; i++ {
				if time.Now().After(deadline) {
					errs <- fmt.Errorf("writer %d: %d appends within %v, want %d", w, won.Load(), 6*s.o.Wait, target)
					return
				}
				attempts.Add(1)
				m := msg(fmt.Sprintf("%d/%d", w, i), topic)
				_, err := c.PublishIf(context.Background(), tail, m)
				switch {
				case err == nil:
					mu.Lock()
					wins = append(wins, appendRecord{tail: tail, m: m})
					mu.Unlock()
					won.Add(1)
					tail = m.Pos
				case errors.Is(err, pubsub.ErrConflict):
					_, tail, err = c.ReadTopic(context.Background(), topic, tail, 1)
					if errors.Is(err, pubsub.ErrEpochChanged) {
						err = fmt.Errorf("the epoch changed during the race: %w", err)
					}
					if err != nil {
						errs <- fmt.Errorf("writer %d: ReadTopic: %w", w, err)
						return
					}
				default:
					errs <- fmt.Errorf("writer %d: PublishIf(%v): %w", w, tail, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := <-noise; err != nil {
		t.Fatalf("publishing to another topic: %v", err)
	}
	sortRecords(wins)
	for i := 1; i < len(wins); i++ {
		if wins[i].m.Pos == wins[i-1].m.Pos {
			t.Fatalf("two appends at %v", wins[i].m.Pos)
		}
	}
	for _, node := range nodes {
		msgs, tail := readTopic(t, node, topic, pubsub.Position{}, 0)
		var want []*pubsub.Message
		for _, w := range wins {
			want = append(want, w.m)
		}
		checkMessages(t, "the race's topic", msgs, want)
		if len(wins) > 0 && tail != wins[len(wins)-1].m.Pos {
			t.Errorf("tail %v, want the last append %v", tail, wins[len(wins)-1].m.Pos)
		}
	}
	prev := pubsub.Position{}
	for i, w := range wins {
		if w.tail != prev {
			t.Fatalf("append %d (%q at %v) was given the tail %v, but the message before it is at %v: two winners for one tail", i, w.m.Data, w.m.Pos, w.tail, prev)
		}
		prev = w.m.Pos
	}
	t.Logf("%d appends won of %d attempts by %d writers on %d node(s)", len(wins), attempts.Load(), writers, len(nodes))
}

func sortRecords(rs []appendRecord) {
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].m.Pos.Offset < rs[j-1].m.Pos.Offset; j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

// largeBase is the pseudo-random binary content of the large messages.
var largeBase = sync.OnceValue(func() []byte {
	r := rand.New(rand.NewPCG(1, 0x5eed))
	b := make([]byte, 64<<20)
	for j := 0; j+8 <= len(b); j += 8 {
		binary.LittleEndian.PutUint64(b[j:], r.Uint64())
	}
	return b
})

// largeData returns n bytes of binary data for message i (n at most 64
// MiB): its number, then pseudo-random bytes that differ per message.
func largeData(i, n int) []byte {
	base := largeBase()
	off := (i * 7919) % (len(base) - n + 1)
	b := make([]byte, n)
	copy(b, base[off:off+n])
	if n >= 8 {
		binary.BigEndian.PutUint64(b, uint64(i))
	}
	return b
}

// testCondLarge: a message of Options.MaxData bytes round-trips, and a
// topic of about Options.LargeBytes is read back exactly in pages.
func (s *suite) testCondLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and reads about 100 MiB; skipped with -short")
	}
	_, c := s.conditional(t)
	const topic = "cond.large"
	size := s.o.MaxData
	n := int(max(s.o.LargeBytes/int64(size), 1))
	tail := pubsub.Position{}
	start := time.Now()
	for i := range n {
		m := publishIf(t, c, tail, &pubsub.Message{Topics: []string{topic}, Data: string(largeData(i, size))})
		tail = m.Pos
		if i == 0 {
			msgs, _ := readTopic(t, c, topic, pubsub.Position{}, 0)
			if len(msgs) != 1 || msgs[0].Data != m.Data {
				t.Fatalf("a message of %d bytes did not round-trip", size)
			}
		}
	}
	wrote := time.Since(start)
	const page = 8
	start = time.Now()
	after := pubsub.Position{}
	read := 0
	var total int64
	for read < n {
		msgs, got := readTopic(t, c, topic, after, page)
		if got != tail {
			t.Fatalf("tail %v while paging, want %v", got, tail)
		}
		if len(msgs) == 0 || len(msgs) > page {
			t.Fatalf("a page after %v has %d messages (limit %d), %d of %d read", after, len(msgs), page, read, n)
		}
		for _, m := range msgs {
			if !bytes.Equal([]byte(m.Data), largeData(read, size)) {
				t.Fatalf("message %d of %d bytes read back different (%d bytes)", read, size, len(m.Data))
			}
			read++
			total += int64(len(m.Data))
		}
		after = msgs[len(msgs)-1].Pos
	}
	if msgs, _ := readTopic(t, c, topic, after, page); len(msgs) != 0 {
		t.Fatalf("%d messages after the tail", len(msgs))
	}
	took := time.Since(start)
	t.Logf("%d messages of %d bytes: appended in %v, read back in pages of %d in %v (%.0f MB/s, with the check)",
		n, size, wrote.Round(time.Millisecond), page, took.Round(time.Millisecond), float64(total)/took.Seconds()/1e6)
}
