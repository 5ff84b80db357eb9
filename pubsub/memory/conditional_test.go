package memory_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

// TestConditional covers the memory broker's compare-and-append: the tail
// of a topic, conflicts, finished topics, epochs and binary data.
func TestConditional(t *testing.T) {
	ctx := context.Background()
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	type step struct {
		name    string
		tail    func(prev pubsub.Position) pubsub.Position // the condition, from the previous tail
		msg     pubsub.Message
		wantErr error
	}
	same := func(p pubsub.Position) pubsub.Position { return p }
	stale := func(pubsub.Position) pubsub.Position { return pubsub.Position{} }
	cases := []struct {
		name  string
		steps []step
	}{
		{"append on empty then on tail", []step{
			{"first", same, pubsub.Message{Data: "a"}, nil},
			{"second", same, pubsub.Message{Data: "b"}, nil},
			{"stale tail", stale, pubsub.Message{Data: "c"}, pubsub.ErrConflict},
			{"right tail again", same, pubsub.Message{Data: "d"}, nil},
		}},
		{"binary data and meta round-trip", []step{
			{"bytes", same, pubsub.Message{Data: string(binary) + "\x00\xff\xfe", Meta: map[string]string{"ds.op": "append"}}, nil},
		}},
		{"finished topic", []step{
			{"final", same, pubsub.Message{Data: "end", Final: true}, nil},
			{"after final", same, pubsub.Message{Data: "late"}, pubsub.ErrTopicFinished},
		}},
		{"other epoch", []step{
			{"first", same, pubsub.Message{Data: "a"}, nil},
			{"foreign epoch", func(p pubsub.Position) pubsub.Position { return pubsub.Position{Epoch: "other", Offset: p.Offset} }, pubsub.Message{Data: "b"}, pubsub.ErrConflict},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := memory.New(nil)
			defer b.Close()
			// Another topic's messages never move this topic's tail.
			if _, err := b.Publish(ctx, &pubsub.Message{Topics: []string{"other"}, Data: "x"}); err != nil {
				t.Fatal(err)
			}
			var tail pubsub.Position
			var kept []string
			for _, s := range c.steps {
				m := s.msg
				m.Topics = []string{"t"}
				pos, err := b.PublishIf(ctx, s.tail(tail), &m)
				if !errors.Is(err, s.wantErr) {
					t.Fatalf("%s: err %v, want %v", s.name, err, s.wantErr)
				}
				if err != nil {
					continue
				}
				if pos.Offset <= tail.Offset || pos.Epoch != b.Epoch() {
					t.Fatalf("%s: position %v after %v", s.name, pos, tail)
				}
				tail = pos
				kept = append(kept, m.Data)
			}
			msgs, got, err := b.ReadTopic(ctx, "t", pubsub.Position{}, 0)
			if err != nil || got != tail {
				t.Fatalf("ReadTopic: tail %v err %v, want %v", got, err, tail)
			}
			if len(msgs) != len(kept) {
				t.Fatalf("ReadTopic: %d messages, want %d", len(msgs), len(kept))
			}
			for i, m := range msgs {
				if m.Data != kept[i] {
					t.Errorf("message %d: data %q, want %q", i, m.Data, kept[i])
				}
			}
			if c.steps[0].msg.Meta != nil && msgs[0].Meta["ds.op"] != "append" {
				t.Errorf("meta lost: %v", msgs[0].Meta)
			}
		})
	}
}

// TestReadTopicOtherEpoch: reading after a position of another epoch is
// ErrEpochChanged, even at offset 0.
func TestReadTopicOtherEpoch(t *testing.T) {
	b := memory.New(nil)
	defer b.Close()
	for _, off := range []uint64{0, 1, 1 << 40} {
		if _, _, err := b.ReadTopic(context.Background(), "t", pubsub.Position{Epoch: "other", Offset: off}, 0); !errors.Is(err, pubsub.ErrEpochChanged) {
			t.Errorf("offset %d: %v, want ErrEpochChanged", off, err)
		}
	}
}

// TestReadTopicPages reads a topic after a position, in pages.
func TestReadTopicPages(t *testing.T) {
	ctx := context.Background()
	b := memory.New(nil)
	defer b.Close()
	var tail pubsub.Position
	for i := range 10 {
		pos, err := b.PublishIf(ctx, tail, &pubsub.Message{Topics: []string{"t"}, Data: string(rune('a' + i))})
		if err != nil {
			t.Fatal(err)
		}
		tail = pos
	}
	var got string
	after := pubsub.Position{}
	for {
		msgs, tl, err := b.ReadTopic(ctx, "t", after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if tl != tail {
			t.Fatalf("tail %v, want %v", tl, tail)
		}
		if len(msgs) == 0 {
			break
		}
		if len(msgs) > 3 {
			t.Fatalf("%d messages over the limit", len(msgs))
		}
		for _, m := range msgs {
			got += m.Data
		}
		after = msgs[len(msgs)-1].Pos
	}
	if got != "abcdefghij" {
		t.Fatalf("read %q", got)
	}
	// Purge: the tail is back to zero and the topic not finished.
	if _, err := b.PublishIf(ctx, tail, &pubsub.Message{Topics: []string{"t"}, Final: true}); err != nil {
		t.Fatal(err)
	}
	if err := b.Purge(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, tl, _ := b.ReadTopic(ctx, "t", pubsub.Position{}, 0); !tl.IsZero() {
		t.Fatalf("tail after purge %v", tl)
	}
	if _, err := b.PublishIf(ctx, pubsub.Position{}, &pubsub.Message{Topics: []string{"t"}, Data: "again"}); err != nil {
		t.Fatalf("append after purge: %v", err)
	}
}

// TestPublishIfRace: many goroutines append on the same tail; exactly one
// wins each round, and nothing is lost or duplicated.
func TestPublishIfRace(t *testing.T) {
	ctx := context.Background()
	b := memory.New(nil)
	defer b.Close()
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < each; {
				_, tail, err := b.ReadTopic(ctx, "t", pubsub.Position{}, 1)
				if err != nil {
					t.Error(err)
					return
				}
				_, err = b.PublishIf(ctx, tail, &pubsub.Message{Topics: []string{"t"}, Data: string(rune('A' + w))})
				switch {
				case err == nil:
					i++
				case !errors.Is(err, pubsub.ErrConflict):
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	msgs, _, err := b.ReadTopic(ctx, "t", pubsub.Position{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != writers*each {
		t.Fatalf("%d messages, want %d", len(msgs), writers*each)
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].Pos.Offset <= msgs[i-1].Pos.Offset {
			t.Fatalf("positions out of order at %d", i)
		}
	}
}
