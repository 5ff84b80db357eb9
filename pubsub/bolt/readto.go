package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"go.etcd.io/bbolt"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/internal/codec"
)

var _ pubsub.TopicStreamer = (*Broker)(nil)

// ReadTopicTo calls fn with topic's messages after the position after (at
// most limit; limit <= 0: all) inside one read transaction, and returns the
// topic's tail. Each message's strings (Data above all) are bbolt's memory
// map itself, not copies, and one Message is reused from call to call: fn
// must copy what it keeps and return quickly, since bbolt cannot grow its
// file while a read transaction is open. It implements
// pubsub.TopicStreamer.
func (b *Broker) ReadTopicTo(ctx context.Context, topic string, after pubsub.Position, limit int, fn func(m *pubsub.Message) error) (pubsub.Position, error) {
	if err := ctx.Err(); err != nil {
		return pubsub.Position{}, err
	}
	if !after.IsZero() && after.Epoch != b.epoch {
		return pubsub.Position{}, fmt.Errorf("%w: position %v, log %s", pubsub.ErrEpochChanged, after, b.epoch)
	}
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return pubsub.Position{}, pubsub.ErrClosed
	}
	var tail uint64
	err := b.db.View(func(tx *bbolt.Tx) error {
		s, err := loadStore(tx)
		if err != nil {
			return err
		}
		tail, err = s.scanTopic(ctx, topic, after.Offset, limit, fn)
		return err
	})
	var ce callerError
	switch {
	case errors.As(err, &ce):
		return b.pos(tail), ce.err
	case err != nil:
		return pubsub.Position{}, fmt.Errorf("bolt: read topic: %w", err)
	}
	return b.pos(tail), nil
}

// callerError carries the error of ReadTopicTo's fn out of the transaction
// unwrapped.
type callerError struct{ err error }

func (e callerError) Error() string { return e.err.Error() }

// ctxEvery is how many messages a scan reads between looks at its context.
const ctxEvery = 64

// scanTopic calls fn with topic's messages after offset after (at most
// limit; limit <= 0: all) and returns the topic's tail. It walks the
// index and the log as readTopic does, but hands each record to fn as a
// view of the transaction's memory, reusing one Message, so that a read
// costs no allocation per message.
func (s *store) scanTopic(ctx context.Context, name string, after uint64, limit int, fn func(*pubsub.Message) error) (uint64, error) {
	topic := []byte(name)
	tail, err := s.topicTail(topic)
	if err != nil || tail <= after {
		return tail, err
	}
	p := idxPrefix(topic)
	var (
		v    recordView
		lk   []byte
		val  []byte
		key  [8]byte
		read int
	)
	v.only = []string{name}
	lc := s.log.Cursor()
	c := s.idx.Cursor()
	for k, _ := c.Seek(idxKey(topic, after+1)); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		if limit > 0 && read >= limit {
			break
		}
		if read%ctxEvery == ctxEvery-1 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		if len(k) != len(p)+8 {
			return 0, fmt.Errorf("%w: index key of %d bytes", errCorrupt, len(k))
		}
		copy(key[:], k[len(p):])
		if lk != nil {
			lk, val = lc.Next()
		}
		if !bytes.Equal(lk, key[:]) {
			lk, val = lc.Seek(key[:])
		}
		if !bytes.Equal(lk, key[:]) {
			return 0, fmt.Errorf("%w: offset %d indexed but not in the log", errCorrupt, binary.BigEndian.Uint64(key[:]))
		}
		if err := v.set(val, s.epoch, name); err != nil {
			return 0, fmt.Errorf("offset %d: %w", binary.BigEndian.Uint64(key[:]), err)
		}
		if err := fn(&v.m); err != nil {
			return tail, callerError{err}
		}
		read++
	}
	return tail, nil
}

// recordView presents stored records as Messages without copying them:
// the Message's strings alias the record, and its arrays and map are
// reused from record to record.
type recordView struct {
	r      rawRecord
	m      pubsub.Message
	only   []string // the read topic alone, the Topics of most records
	topics []string
	also   []string
	meta   map[string]string
}

// set makes v.m the message stored in rec (of the log's epoch, read on
// topic).
func (v *recordView) set(rec []byte, epoch, topic string) error {
	if err := v.r.parse(rec); err != nil {
		return err
	}
	r := &v.r
	m := &v.m
	*m = pubsub.Message{
		Pos:  pubsub.Position{Epoch: epoch, Offset: r.offset},
		Time: time.Unix(0, r.time),
		Type: aliasString(r.typ),
	}
	codec.SetFlags(m, r.flags)
	if len(r.topics) == 1 && string(r.topics[0]) == topic {
		m.Topics = v.only
	} else {
		v.topics = v.topics[:0]
		for _, t := range r.topics {
			v.topics = append(v.topics, aliasString(t))
		}
		m.Topics = v.topics
	}
	if r.version != recordVersion {
		m.Meta, m.Data = codec.LegacyMeta(aliasString(r.data))
		return nil
	}
	m.Data = aliasString(r.data)
	if len(r.extra) <= emptyExtra {
		return nil
	}
	if err := (&codec.Reader{B: r.extra}).ExtraView(m, v.also, v.meta); err != nil {
		return err
	}
	if m.Also != nil {
		v.also = m.Also
	}
	if m.Meta != nil {
		v.meta = m.Meta
	}
	return nil
}

// aliasString returns b's bytes as a string without a copy: valid as long
// as b's memory is, and only if nothing modifies it.
func aliasString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
