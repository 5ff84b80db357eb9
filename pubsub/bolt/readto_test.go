package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/bolt"
)

// copyOf copies a message handed to ReadTopicTo's callback out of the
// store's memory.
func copyOf(m *pubsub.Message) *pubsub.Message {
	c := *m
	c.Data = strings.Clone(m.Data)
	c.Type = strings.Clone(m.Type)
	c.ID = strings.Clone(m.ID)
	c.Topics = slices.Clone(m.Topics)
	for i := range c.Topics {
		c.Topics[i] = strings.Clone(c.Topics[i])
	}
	c.Also = slices.Clone(m.Also)
	if m.Meta != nil {
		c.Meta = make(map[string]string, len(m.Meta))
		for k, v := range m.Meta {
			c.Meta[strings.Clone(k)] = strings.Clone(v)
		}
	}
	return &c
}

func sameMessage(a, b *pubsub.Message) bool {
	return a.Pos == b.Pos && a.Time.Equal(b.Time) && a.Data == b.Data && a.Type == b.Type && a.ID == b.ID &&
		a.Final == b.Final && a.Retain == b.Retain && a.Private == b.Private &&
		slices.Equal(a.Topics, b.Topics) && slices.Equal(a.Also, b.Also) && maps.Equal(a.Meta, b.Meta)
}

// TestReadTopicTo: ReadTopicTo hands over the messages ReadTopic returns,
// field for field (binary data with every byte value, metadata, several
// topics, empty data), from any position and with any limit, and the same
// tail.
func TestReadTopicTo(t *testing.T) {
	b := openT(t, filepath.Join(t.TempDir(), "herald.db"), bolt.Options{})
	ctx := context.Background()
	var all strings.Builder
	for i := range 256 {
		all.WriteByte(byte(i))
	}
	bin := all.String()
	tail := pubsub.Position{}
	for i := range 40 {
		m := &pubsub.Message{Topics: []string{"t"}, Data: bin[i*5%256:] + bin[:i*3%256]}
		switch i % 5 {
		case 1:
			m.Meta = map[string]string{"op": "append", "seq": fmt.Sprint(i)}
			m.Type = "ty"
		case 2:
			m.Topics = []string{"t", "other"}
			m.ID = fmt.Sprint("id-", i)
		case 3:
			m.Data = ""
		}
		if i == 39 {
			m.Final = true
		}
		// Another topic's message between the topic's.
		if _, err := b.Publish(ctx, &pubsub.Message{Topics: []string{"x"}, Data: "noise"}); err != nil {
			t.Fatal(err)
		}
		pos, err := b.PublishIf(ctx, tail, m)
		if err != nil && len(m.Topics) == 1 {
			t.Fatal(err)
		}
		if len(m.Topics) > 1 {
			if pos, err = b.Publish(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		tail = pos
	}
	want, wantTail, err := b.ReadTopic(ctx, "t", pubsub.Position{}, 0)
	if err != nil || len(want) != 40 {
		t.Fatalf("ReadTopic: %d messages, %v", len(want), err)
	}
	for _, from := range []int{-1, 0, 7, 38, 39} {
		for _, limit := range []int{0, 1, 3, 100} {
			after := pubsub.Position{}
			if from >= 0 {
				after = want[from].Pos
			}
			exp, _, err := b.ReadTopic(ctx, "t", after, limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []*pubsub.Message
			gotTail, err := b.ReadTopicTo(ctx, "t", after, limit, func(m *pubsub.Message) error {
				got = append(got, copyOf(m))
				return nil
			})
			if err != nil || gotTail != wantTail {
				t.Fatalf("after %d limit %d: tail %v, %v; want %v", from, limit, gotTail, err, wantTail)
			}
			if len(got) != len(exp) {
				t.Fatalf("after %d limit %d: %d messages, want %d", from, limit, len(got), len(exp))
			}
			for i := range got {
				if !sameMessage(got[i], exp[i]) {
					t.Fatalf("after %d limit %d: message %d is\n%+v\nwant\n%+v", from, limit, i, got[i], exp[i])
				}
			}
		}
	}
	// An unknown topic: nothing, a zero tail.
	tl, err := b.ReadTopicTo(ctx, "none", pubsub.Position{}, 0, func(*pubsub.Message) error {
		t.Error("called for an unknown topic")
		return nil
	})
	if err != nil || !tl.IsZero() {
		t.Fatalf("unknown topic: %v %v", tl, err)
	}
	// Another epoch's position.
	if _, err := b.ReadTopicTo(ctx, "t", pubsub.Position{Epoch: "other", Offset: 1}, 0, func(*pubsub.Message) error { return nil }); !errors.Is(err, pubsub.ErrEpochChanged) {
		t.Fatalf("another epoch: %v", err)
	}
}

// TestReadTopicToStops: an error of the callback ends the read and comes
// back as it is; a context cancelled during the read ends it within a few
// messages.
func TestReadTopicToStops(t *testing.T) {
	b := openT(t, filepath.Join(t.TempDir(), "herald.db"), bolt.Options{})
	ctx := context.Background()
	for i := range 1000 {
		if _, err := b.Publish(ctx, &pubsub.Message{Topics: []string{"t"}, Data: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	stop := errors.New("stop")
	n := 0
	_, err := b.ReadTopicTo(ctx, "t", pubsub.Position{}, 0, func(m *pubsub.Message) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	if err != stop || n != 10 {
		t.Fatalf("callback error: %v after %d calls", err, n)
	}
	cctx, cancel := context.WithCancel(ctx)
	n = 0
	_, err = b.ReadTopicTo(cctx, "t", pubsub.Position{}, 0, func(m *pubsub.Message) error {
		n++
		if n == 5 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n >= 100 {
		t.Fatalf("cancelled: %v after %d calls", err, n)
	}
}

// TestReadTopicToAllocs: a read costs a few allocations, not some per
// message: the messages are views of the store, one Message reused.
func TestReadTopicToAllocs(t *testing.T) {
	b := openT(t, filepath.Join(t.TempDir(), "herald.db"), bolt.Options{})
	ctx := context.Background()
	tail := pubsub.Position{}
	for i := range 1000 {
		m := &pubsub.Message{Topics: []string{"t"}, Data: strings.Repeat("x", 100), Meta: map[string]string{"op": "append", "n": fmt.Sprint(i)}}
		var err error
		if tail, err = b.PublishIf(ctx, tail, m); err != nil {
			t.Fatal(err)
		}
	}
	size := 0
	fn := func(m *pubsub.Message) error {
		size += len(m.Data) + len(m.Meta["op"])
		return nil
	}
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := b.ReadTopicTo(ctx, "t", pubsub.Position{}, 0, fn); err != nil {
			t.Fatal(err)
		}
	})
	if size != 5*1000*106+1000*106 {
		t.Fatalf("read %d bytes", size)
	}
	t.Logf("%.0f allocations", allocs)
	if allocs > 100 {
		t.Fatalf("%.0f allocations to read 1,000 messages", allocs)
	}
}
