package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/internal/codec"
)

var _ pubsub.Conditional = (*Broker)(nil)

// ErrSharedTopic is returned (wrapped) by ReadTopic and PublishIf for a
// topic some of whose messages are stored on another topic's subject (it
// was the second or later topic of a message published to several): the
// subject's sequence, which JetStream checks, would not be the topic's
// tail.
var ErrSharedTopic = errors.New("nats: the topic has messages stored under other topics; conditional reads and appends need a topic whose messages are all on its own subject")

// ReadTopic returns topic's messages after the position after, at most
// limit of them (limit <= 0: all), and the topic's tail: the newest event
// on the topic's subject when the read starts; messages appended later are
// not returned. The first few are read by gets (up to readBatch, while
// they are small), the rest by an ephemeral consumer filtered on the
// subject. It implements
// pubsub.Conditional.
func (b *Broker) ReadTopic(ctx context.Context, topic string, after pubsub.Position, limit int) ([]*pubsub.Message, pubsub.Position, error) {
	if err := b.check(ctx); err != nil {
		return nil, pubsub.Position{}, err
	}
	octx := ctx
	ctx, cancel := b.bound(ctx)
	defer cancel()
	info, err := b.ensureStream(ctx, false)
	if err != nil {
		return nil, pubsub.Position{}, b.fail(octx, "read topic", err)
	}
	epoch := epochOf(info)
	if !after.IsZero() && after.Epoch != epoch {
		return nil, pubsub.Position{}, fmt.Errorf("%w: position %v, log %s", pubsub.ErrEpochChanged, after, epoch)
	}
	if err := b.ownTopic(ctx, topic); err != nil {
		return nil, pubsub.Position{}, b.condFail(octx, "read topic", err)
	}
	s, _, _ := b.current()
	subject := b.subject(topic)
	last, err := lastOn(ctx, s, subject)
	if err != nil {
		return nil, pubsub.Position{}, b.fail(octx, "read topic", err)
	}
	if last == nil || last.Header.Get(hdrMarker) == "purge" {
		return nil, pubsub.Position{}, nil
	}
	tail := pubsub.Position{Epoch: epoch, Offset: last.Sequence}
	if last.Sequence <= after.Offset {
		return nil, tail, nil
	}
	msgs, err := b.readSubject(ctx, s, epoch, subject, topic, after.Offset, last.Sequence, limit)
	if err != nil {
		return nil, pubsub.Position{}, b.fail(octx, "read topic", err)
	}
	return msgs, tail, nil
}

// readSubject returns the events of topic on subject after `after` up to
// tail, at most limit of them (limit <= 0: all).
func (b *Broker) readSubject(ctx context.Context, s jetstream.Stream, epoch, subject, topic string, after, tail uint64, limit int) ([]*pubsub.Message, error) {
	var out []*pubsub.Message
	size := 0 // of the largest payload so far
	// add takes one message; it reports whether the read is complete.
	add := func(seq uint64, hdr natsgo.Header, data []byte, t time.Time) bool {
		if seq > tail {
			return true
		}
		size = max(size, len(data))
		if hdr.Get(hdrMarker) == "" {
			m, err := codec.Decode(data)
			switch {
			case err != nil:
				b.o.Logger.Error("nats: skipping an undecodable message", "seq", seq, "err", err)
			case m.HasTopic(topic):
				m.Pos = pubsub.Position{Epoch: epoch, Offset: seq}
				m.Time = t
				out = append(out, m)
			}
		}
		return seq >= tail || limit > 0 && len(out) >= limit
	}
	from := after + 1
	// get reads on from `from` by gets, at most n messages (n < 0: to the
	// end), stopping early at a large one when n >= 0; it reports whether
	// the read is complete.
	get := func(n int) (bool, error) {
		for i := 0; n < 0 || i < n; i++ {
			g, err := s.GetMsg(ctx, from, jetstream.WithGetMsgSubject(subject))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return true, nil
			}
			if err != nil {
				return false, err
			}
			if add(g.Sequence, g.Header, g.Data, g.Time) {
				return true, nil
			}
			from = g.Sequence + 1
			if n >= 0 && size > 64<<10 {
				// A get answers in JSON, the data in base64: large messages
				// come cheaper, raw, from a consumer.
				return false, nil
			}
		}
		return false, nil
	}
	if done, err := get(readBatch); done || err != nil {
		return out, err
	}
	done, err := b.consumeSubject(ctx, s, subject, &from, func() int {
		// About 8 MiB a batch, by the largest message so far: the
		// client's pending limit is 64 MiB.
		batch := min(256, max(1, (8<<20)/max(size, 1)))
		if limit > 0 {
			batch = min(batch, limit-len(out))
		}
		return batch
	}, add)
	if done || err != nil {
		return out, err
	}
	// The consumer stopped short (see consumeSubject): gets tell for sure.
	if _, err := get(-1); err != nil {
		return nil, err
	}
	return out, nil
}

// consumeSubject hands the messages on subject from *from on to add, read
// in batches (of batchSize messages) with an ephemeral consumer, moving
// *from past each, until add reports the read complete (then it returns
// true). It returns false when the consumer stops short: a batch without a
// message, or one that skips a delivery.
//
// Neither is taken for the end of the subject: the client gives up on a
// no-wait pull after a second without an answer (a busy server) and
// reports no error, and the messages the server sends for it later reach
// no one, while the consumer (AckNone) counts them delivered (its own
// sequence then jumps). The caller reads on from *from with gets, which
// find what the consumer lost.
func (b *Broker) consumeSubject(ctx context.Context, s jetstream.Stream, subject string, from *uint64, batchSize func() int, add func(uint64, natsgo.Header, []byte, time.Time) bool) (bool, error) {
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     subject,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       *from,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 10 * time.Second,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		return false, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = s.DeleteConsumer(dctx, cons.CachedInfo().Name)
		cancel()
	}()
	delivered := uint64(0) // the consumer's sequence of the last message taken
	for {
		mb, err := cons.FetchNoWait(batchSize())
		if err != nil {
			return false, err
		}
		got := 0
		for msg := range mb.Messages() {
			md, err := msg.Metadata()
			if err != nil {
				return false, err
			}
			if md.Sequence.Consumer != delivered+1 {
				b.o.Logger.Debug("nats: a read lost a delivery; reading on by gets", "subject", subject, "from", *from)
				return false, nil
			}
			delivered = md.Sequence.Consumer
			got++
			if add(md.Sequence.Stream, msg.Headers(), msg.Data(), md.Timestamp) {
				return true, nil
			}
			*from = md.Sequence.Stream + 1
		}
		if err := mb.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return false, err
		}
		if got == 0 {
			// Nothing pending, or an answer that did not come in time:
			// only a get tells.
			return false, nil
		}
	}
}

// PublishIf appends m, which has one topic, if that topic's tail is tail.
// The message goes on the topic's subject with
// Nats-Expected-Last-Subject-Sequence set to the subject's newest
// sequence, as this node last saw it: JetStream stores it only if no
// message reached the subject since, whichever node sent it. A refusal
// makes the node read the subject again and decide: another tail is
// ErrConflict, the same one (a purge marker, or this node's view was
// stale) is tried again. It implements pubsub.Conditional.
func (b *Broker) PublishIf(ctx context.Context, tail pubsub.Position, m *pubsub.Message) (pubsub.Position, error) {
	if err := b.check(ctx); err != nil {
		return pubsub.Position{}, err
	}
	if len(m.Topics) != 1 {
		return pubsub.Position{}, fmt.Errorf("nats: publish if: a conditional append has one topic, not %d", len(m.Topics))
	}
	octx := ctx
	ctx, cancel := b.bound(ctx)
	defer cancel()
	topic := m.Topics[0]
	if err := b.ownTopic(ctx, topic); err != nil {
		return pubsub.Position{}, b.condFail(octx, "publish if", err)
	}
	subject := b.subject(topic)
	blob := codec.Encode(nil, m)
	ss := b.subjectState(subject)
	ss.mu.Lock()
	seq, epoch, err := b.publishIfOn(ctx, subject, ss, tail, blob, m.Final)
	ss.mu.Unlock()
	if err != nil {
		return pubsub.Position{}, b.condFail(octx, "publish if", err)
	}
	m.Pos = pubsub.Position{Epoch: epoch, Offset: seq}
	m.Time = time.Now()
	if m.Retain {
		if err := b.storeRetained(ctx, epoch, topic, seq, m.Time, blob); err != nil {
			b.o.Logger.Error("nats: could not store a retained message", "topic", topic, "seq", seq, "err", err)
		}
	}
	return m.Pos, nil
}

// publishIfOn appends data on subject if the subject's newest event is at
// tail; ss.mu must be held. It returns the sequence and the epoch.
func (b *Broker) publishIfOn(ctx context.Context, subject string, ss *subjectState, tail pubsub.Position, data []byte, final bool) (uint64, string, error) {
	fresh := false
	if !ss.known {
		if err := b.refresh(ctx, subject, ss); err != nil {
			return 0, "", err
		}
		fresh = true
	}
	for range 100 {
		_, _, epoch := b.current()
		if tail.Offset != 0 && tail.Epoch != epoch {
			return 0, "", fmt.Errorf("%w: %w: tail %v, log %s", pubsub.ErrConflict, pubsub.ErrEpochChanged, tail, epoch)
		}
		if ss.final || ss.tail() != tail.Offset {
			if !fresh {
				// What this node knows may be old: look before deciding.
				if err := b.refresh(ctx, subject, ss); err != nil {
					return 0, "", err
				}
				fresh = true
				continue
			}
			if ss.final {
				return 0, "", pubsub.ErrTopicFinished
			}
			return 0, "", fmt.Errorf("%w: the tail is at %d, not %d", pubsub.ErrConflict, ss.tail(), tail.Offset)
		}
		p := ss.last
		if p == 0 {
			p = ss.prevBound
		}
		id := nuid.Next()
		h := natsgo.Header{}
		h.Set(hdrPrev, strconv.FormatUint(p, 10))
		h.Set(natsgo.MsgIdHdr, id)
		ack, err := b.send(ctx, &natsgo.Msg{Subject: subject, Header: h, Data: data},
			jetstream.WithExpectStream(b.o.Stream), jetstream.WithExpectLastSequencePerSubject(ss.last))
		switch {
		case isWrongLast(err):
			if err := b.refresh(ctx, subject, ss); err != nil {
				return 0, "", err
			}
			fresh = true
			continue
		case err != nil && isNoStream(err) && ctx.Err() == nil:
			// The stream is gone: create it (a new epoch), and decide again.
			if _, err := b.ensureStream(ctx, true); err != nil {
				return 0, "", err
			}
			ss.known = false
			if err := b.refresh(ctx, subject, ss); err != nil {
				return 0, "", err
			}
			fresh = true
			continue
		case err != nil:
			ss.known = false
			return 0, "", err
		}
		if ack.Duplicate {
			// Sent again after the connection was lost: the first send
			// was stored; others may have followed it.
			ss.known = false
		} else {
			ss.last, ss.lastID, ss.final, ss.finalOf, ss.prevBound, ss.purged = ack.Sequence, id, final, 0, 0, false
			if final {
				ss.finalOf = ack.Sequence
			}
		}
		return ack.Sequence, epoch, nil
	}
	return 0, "", errors.New("too much contention on the subject")
}

// ownTopic returns ErrSharedTopic when the state bucket's index says that
// some of topic's messages are stored on other subjects.
func (b *Broker) ownTopic(ctx context.Context, topic string) error {
	entry, err := b.kvGet(ctx, stateKey("x", topic))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	_, _, epoch := b.current()
	if subjects := parseIndex(entry.Value(), epoch); len(subjects) > 0 {
		return fmt.Errorf("%w: %q is also stored on %d other subject(s)", ErrSharedTopic, topic, len(subjects))
	}
	return nil
}

// condFail passes the conditional errors through and maps the others as
// fail does.
func (b *Broker) condFail(ctx context.Context, op string, err error) error {
	if errors.Is(err, pubsub.ErrConflict) || errors.Is(err, ErrSharedTopic) {
		return fmt.Errorf("nats: %s: %w", op, err)
	}
	if errors.Is(err, pubsub.ErrTopicFinished) {
		return err
	}
	return b.fail(ctx, op, err)
}
