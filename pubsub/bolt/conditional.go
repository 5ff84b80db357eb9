package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/internal/codec"
)

var _ pubsub.Conditional = (*Broker)(nil)

// ReadTopic returns topic's messages after the position after, at most
// limit of them (limit <= 0: all), and the topic's tail, from one read
// transaction: a seek in the topic's index, then one log lookup per
// message. It implements pubsub.Conditional.
func (b *Broker) ReadTopic(ctx context.Context, topic string, after pubsub.Position, limit int) ([]*pubsub.Message, pubsub.Position, error) {
	if err := ctx.Err(); err != nil {
		return nil, pubsub.Position{}, err
	}
	if !after.IsZero() && after.Epoch != b.epoch {
		return nil, pubsub.Position{}, fmt.Errorf("%w: position %v, log %s", pubsub.ErrEpochChanged, after, b.epoch)
	}
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return nil, pubsub.Position{}, pubsub.ErrClosed
	}
	var (
		msgs []*pubsub.Message
		tail uint64
	)
	err := b.db.View(func(tx *bbolt.Tx) error {
		s, err := loadStore(tx)
		if err != nil {
			return err
		}
		msgs, tail, err = s.readTopic(topic, after.Offset, limit)
		return err
	})
	if err != nil {
		return nil, pubsub.Position{}, fmt.Errorf("bolt: read topic: %w", err)
	}
	return msgs, b.pos(tail), nil
}

// PublishIf appends m, which has one topic, if that topic's tail is tail,
// in the writer's transaction (see pubsub.Conditional). It implements
// pubsub.Conditional.
func (b *Broker) PublishIf(ctx context.Context, tail pubsub.Position, m *pubsub.Message) (pubsub.Position, error) {
	if len(m.Topics) != 1 {
		return pubsub.Position{}, fmt.Errorf("bolt: publish if: a conditional append has one topic, not %d", len(m.Topics))
	}
	if tail.Offset != 0 && tail.Epoch != b.epoch {
		return pubsub.Position{}, fmt.Errorf("%w: %w: tail %v, log %s", pubsub.ErrConflict, pubsub.ErrEpochChanged, tail, b.epoch)
	}
	o := &op{kind: opPublishIf, msg: m, tail: tail.Offset, done: make(chan struct{})}
	if err := b.submit(ctx, o); err != nil {
		return pubsub.Position{}, err
	}
	return m.Pos, nil
}

// pos returns the position of offset off, or the zero Position for 0.
func (b *Broker) pos(off uint64) pubsub.Position {
	if off == 0 {
		return pubsub.Position{}
	}
	return pubsub.Position{Epoch: b.epoch, Offset: off}
}

// topicTail returns the offset of topic's newest message in history, 0
// when it has none: the last key of its index.
func (s *store) topicTail(topic []byte) (uint64, error) {
	p := idxPrefix(topic)
	c := s.idx.Cursor()
	k, _ := c.Seek(idxKey(topic, math.MaxUint64))
	if k == nil {
		k, _ = c.Last()
	} else if !bytes.Equal(k, idxKey(topic, math.MaxUint64)) {
		k, _ = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, p) || len(k) != len(p)+8 {
		return 0, nil
	}
	return fromBE64(k[len(p):])
}

// publishIf appends m (see publish) if its topic's tail is tail; it is
// refused (errRefused) with ErrTopicFinished or ErrConflict otherwise.
func (s *store) publishIf(m *pubsub.Message, tail uint64, now int64, maxEvents int) error {
	topic := []byte(m.Topics[0])
	if s.finals.Get(topic) != nil {
		return errRefused{fmt.Errorf("%w: %q", pubsub.ErrTopicFinished, m.Topics[0])}
	}
	cur, err := s.topicTail(topic)
	if err != nil {
		return err
	}
	if cur != tail {
		return errRefused{fmt.Errorf("%w: the tail of %q is at offset %d, not %d", pubsub.ErrConflict, m.Topics[0], cur, tail)}
	}
	// The condition replaces deduplication by ID.
	return s.publish(m, now, maxEvents, false)
}

// readTopic returns topic's messages after offset after (at most limit;
// limit <= 0: all) and the topic's tail, by a cursor over the topic's
// index and a cursor over the log that only moves forward.
func (s *store) readTopic(name string, after uint64, limit int) ([]*pubsub.Message, uint64, error) {
	topic := []byte(name)
	tail, err := s.topicTail(topic)
	if err != nil || tail <= after {
		return nil, tail, err
	}
	p := idxPrefix(topic)
	var recs []rawRecord // valid in this transaction only
	if limit > 0 {
		recs = make([]rawRecord, 0, min(limit, 1024))
	}
	size := 0
	lc := s.log.Cursor()
	var lk, v []byte
	var key [8]byte
	c := s.idx.Cursor()
	for k, _ := c.Seek(idxKey(topic, after+1)); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		if limit > 0 && len(recs) >= limit {
			break
		}
		if len(k) != len(p)+8 {
			return nil, 0, fmt.Errorf("%w: index key of %d bytes", errCorrupt, len(k))
		}
		binary.BigEndian.PutUint64(key[:], binary.BigEndian.Uint64(k[len(p):]))
		// The topic's messages are often next to each other in the log:
		// step forward before searching the tree again.
		if lk != nil {
			lk, v = lc.Next()
		}
		if !bytes.Equal(lk, key[:]) {
			lk, v = lc.Seek(key[:])
		}
		if !bytes.Equal(lk, key[:]) {
			return nil, 0, fmt.Errorf("%w: offset %d indexed but not in the log", errCorrupt, binary.BigEndian.Uint64(key[:]))
		}
		r, err := parseRecord(v)
		if err != nil {
			return nil, 0, fmt.Errorf("offset %d: %w", binary.BigEndian.Uint64(key[:]), err)
		}
		recs = append(recs, r)
		size += len(r.data)
	}
	return s.messages(recs, name, size), tail, nil
}

// messages copies the records of a page into Messages, with a few
// allocations for the whole page rather than several per message: the
// Messages in one array, the data of all in one string (each message's
// Data a part of it), and the topic list shared by the messages of topic
// alone (a Message is never modified once published).
func (s *store) messages(recs []rawRecord, topic string, size int) []*pubsub.Message {
	if len(recs) == 0 {
		return nil
	}
	var all strings.Builder
	all.Grow(size)
	for i := range recs {
		if recs[i].version == recordVersion {
			all.Write(recs[i].data)
		}
	}
	data := all.String()
	only := []string{topic}
	ms := make([]pubsub.Message, len(recs))
	out := make([]*pubsub.Message, len(recs))
	at := 0
	for i := range recs {
		r := &recs[i]
		if r.version != recordVersion {
			out[i] = r.message(s.epoch) // legacy metadata in the data
			continue
		}
		m := &ms[i]
		m.Pos = pubsub.Position{Epoch: s.epoch, Offset: r.offset}
		m.Time = time.Unix(0, r.time)
		m.Type = string(r.typ)
		codec.SetFlags(m, r.flags)
		if len(r.topics) == 1 && string(r.topics[0]) == topic {
			m.Topics = only
		} else {
			m.Topics = make([]string, len(r.topics))
			for j, t := range r.topics {
				m.Topics[j] = string(t)
			}
		}
		m.Data = data[at : at+len(r.data)]
		at += len(r.data)
		if len(r.extra) > emptyExtra {
			_ = (&codec.Reader{B: r.extra}).Extra(m) // checked by parseRecord
		}
		out[i] = m
	}
	return out
}

// emptyExtra is the length of the extra part of a record without ID,
// other-shard topics or metadata (three zero counts).
const emptyExtra = 3
