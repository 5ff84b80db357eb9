package nats

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/internal/codec"
)

// Read returns a snapshot for q: Head is the stream's last sequence when
// the read starts; the messages up to it are read afterwards (the stream
// only grows, so none is missing but those evicted meanwhile, which are
// reported as truncation).
func (b *Broker) Read(ctx context.Context, q pubsub.Query) (pubsub.Snapshot, error) {
	if err := b.check(ctx); err != nil {
		return pubsub.Snapshot{}, err
	}
	octx := ctx
	ctx, cancel := b.bound(ctx)
	defer cancel()
	snap, err := b.read(ctx, q)
	if err != nil {
		return pubsub.Snapshot{}, b.fail(octx, "read", err)
	}
	return snap, nil
}

func (b *Broker) read(ctx context.Context, q pubsub.Query) (pubsub.Snapshot, error) {
	s, kv, _ := b.current()
	info, err := s.Info(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		info, err = b.ensureStream(ctx, true)
		s, kv, _ = b.current()
	}
	if err != nil {
		return pubsub.Snapshot{}, err
	}
	epoch := epochOf(info)
	if epoch != b.Epoch() {
		// Recreated under us: take the new stream handle.
		if info, err = b.ensureStream(ctx, true); err != nil {
			return pubsub.Snapshot{}, err
		}
		s, kv, _ = b.current()
		epoch = epochOf(info)
	}
	head := info.State.LastSeq
	snap := pubsub.Snapshot{Head: pubsub.Position{Epoch: epoch, Offset: head}}
	var after uint64
	if q.After != nil {
		if q.After.Epoch == epoch {
			after = q.After.Offset
		} else {
			snap.EpochChanged = true
		}
	}
	topics := dedupe(q.Topics)
	lasts := make(map[string]*jetstream.RawStreamMsg) // subject -> newest message
	var subjects []string                             // to read, each once
	seen := make(map[uint64]bool)
	for _, topic := range topics {
		subject := b.subject(topic)
		last, err := lastOn(ctx, s, subject)
		if err != nil {
			return pubsub.Snapshot{}, err
		}
		lasts[subject] = last
		if of, ok := finalOf(last); ok && last.Sequence <= head {
			if snap.Finals == nil {
				snap.Finals = make(map[string]pubsub.Position)
			}
			snap.Finals[topic] = pubsub.Position{Epoch: epoch, Offset: of}
		}
		if q.After == nil {
			r, err := b.retained(ctx, kv, epoch, topic, last, head)
			if err != nil {
				return pubsub.Snapshot{}, err
			}
			if r != nil && !seen[r.Pos.Offset] {
				seen[r.Pos.Offset] = true
				snap.Retained = append(snap.Retained, r)
			}
			continue
		}
		if !slices.Contains(subjects, subject) {
			subjects = append(subjects, subject)
		}
		entry, err := b.kvGet(ctx, stateKey("x", topic))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return pubsub.Snapshot{}, err
		default:
			for _, subj := range parseIndex(entry.Value(), epoch) {
				if !slices.Contains(subjects, subj) {
					subjects = append(subjects, subj)
				}
			}
		}
	}
	for _, subject := range subjects {
		last, known := lasts[subject]
		msgs, truncated, err := b.history(ctx, s, epoch, subject, topics, after, head, last, known)
		if err != nil {
			return pubsub.Snapshot{}, err
		}
		snap.Truncated = snap.Truncated || truncated
		for _, m := range msgs {
			if !seen[m.Pos.Offset] {
				seen[m.Pos.Offset] = true
				snap.Events = append(snap.Events, m)
			}
		}
	}
	if q.After != nil && (snap.Truncated || snap.EpochChanged) {
		// A reset: the subscriber starts again from the topics' state.
		for _, topic := range topics {
			r, err := b.retained(ctx, kv, epoch, topic, lasts[b.subject(topic)], head)
			if err != nil {
				return pubsub.Snapshot{}, err
			}
			if r != nil && !slices.ContainsFunc(snap.Retained, func(m *pubsub.Message) bool { return m.Pos == r.Pos }) {
				snap.Retained = append(snap.Retained, r)
			}
		}
	}
	sortByOffset(snap.Events)
	sortByOffset(snap.Retained)
	return snap, nil
}

// firstSeq returns the stream's first sequence: after the last one when
// it holds no message (the state's FirstSeq may lag behind an expiry).
func firstSeq(info *jetstream.StreamInfo) uint64 {
	if info.State.Msgs == 0 {
		return info.State.LastSeq + 1
	}
	return info.State.FirstSeq
}

// readBatch is how many messages of a subject Read fetches one by one
// before it reads the rest with a consumer.
const readBatch = 8

// history returns the messages on subject after `after` up to head that
// have one of topics, and whether some of the subject's messages after
// `after` left the stream. Truncation is exact per subject: each message
// carries (hdrPrev) the sequence of the previous message on its subject,
// or a bound on it, so the first message kept after `after` tells whether
// one before it is gone, and each next one whether one between left while
// the subject was read. last is the subject's newest message if known.
func (b *Broker) history(ctx context.Context, s jetstream.Stream, epoch, subject string, topics []string, after, head uint64, last *jetstream.RawStreamMsg, lastKnown bool) ([]*pubsub.Message, bool, error) {
	next := func(from uint64) (*jetstream.RawStreamMsg, error) {
		m, err := s.GetMsg(ctx, from, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, nil
		}
		return m, err
	}
	g, err := next(after + 1)
	if err != nil {
		return nil, false, err
	}
	if g == nil {
		// Nothing kept after `after`. If the subject keeps older messages,
		// every evicted one is older still. If it is empty, its messages
		// (if any) left with the oldest of the stream.
		if !lastKnown {
			if last, err = lastOn(ctx, s, subject); err != nil {
				return nil, false, err
			}
		}
		if last != nil && last.Sequence > after {
			// The subject's newest message, read before this lookup, is
			// after `after`, yet nothing after `after` is found now: it may
			// have left the stream (expired or evicted) between the two
			// reads. Look again.
			if last, err = lastOn(ctx, s, subject); err != nil {
				return nil, false, err
			}
		}
		if last != nil {
			return nil, false, nil
		}
		info, err := s.Info(ctx)
		if err != nil {
			return nil, false, err
		}
		return nil, after+1 < firstSeq(info), nil
	}
	// Each message names its predecessor on the subject: one after the
	// last message read (at first, after the client's position) means
	// that messages between left the stream, before or during this read.
	truncated := false
	seen := after
	var out []*pubsub.Message
	add := func(seq uint64, hdr natsgo.Header, data []byte, t time.Time) {
		if prev, err := strconv.ParseUint(hdr.Get(hdrPrev), 10, 64); err == nil && prev > seen {
			truncated = true // the message at prev is gone (or may be)
		}
		seen = seq
		if hdr.Get(hdrMarker) != "" {
			return
		}
		m, err := codec.Decode(data)
		if err != nil {
			b.o.Logger.Error("nats: skipping an undecodable message", "seq", seq, "err", err)
			return
		}
		if slices.ContainsFunc(topics, m.HasTopic) {
			m.Pos = pubsub.Position{Epoch: epoch, Offset: seq}
			m.Time = t
			out = append(out, m)
		}
	}
	for n := 0; g != nil && g.Sequence <= head; n++ {
		add(g.Sequence, g.Header, g.Data, g.Time)
		if g.Sequence >= head {
			return out, truncated, nil
		}
		from := g.Sequence + 1
		if n == readBatch {
			done, err := b.scan(ctx, s, subject, head, &from, add)
			if err != nil || done {
				return out, truncated, err
			}
			// The consumer stopped short of head: the rest (if any) is
			// read one message at a time, which tells for sure.
		}
		if g, err = next(from); err != nil {
			return nil, false, err
		}
	}
	return out, truncated, nil
}

// scan hands the messages on subject from *from up to head to add, read in
// batches with an ephemeral consumer (see consumeSubject), moving *from
// past each. It reports done once it handed head; otherwise the caller
// reads on from *from one message at a time.
func (b *Broker) scan(ctx context.Context, s jetstream.Stream, subject string, head uint64, from *uint64, add func(uint64, natsgo.Header, []byte, time.Time)) (bool, error) {
	return b.consumeSubject(ctx, s, subject, from, func() int { return 256 }, func(seq uint64, hdr natsgo.Header, data []byte, t time.Time) bool {
		if seq > head {
			return true
		}
		add(seq, hdr, data, t)
		return seq == head
	})
}

// retained returns topic's retained message at or before head: the newer
// of the bucket's and the subject's newest message if that is retained.
func (b *Broker) retained(ctx context.Context, kv jetstream.KeyValue, epoch, topic string, last *jetstream.RawStreamMsg, head uint64) (*pubsub.Message, error) {
	var best *pubsub.Message
	entry, err := b.kvGet(ctx, stateKey("r", topic))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return nil, err
	default:
		if m, ok := parseRetained(entry.Value(), epoch); ok && m.Pos.Offset <= head {
			best = m
		}
	}
	if last != nil && last.Sequence <= head && last.Header.Get(hdrMarker) == "" && (best == nil || last.Sequence > best.Pos.Offset) {
		if m, err := codec.Decode(last.Data); err == nil && m.Retain {
			m.Pos = pubsub.Position{Epoch: epoch, Offset: last.Sequence}
			m.Time = last.Time
			best = m
		}
	}
	return best, nil
}

func sortByOffset(ms []*pubsub.Message) {
	slices.SortFunc(ms, func(a, b *pubsub.Message) int {
		switch {
		case a.Pos.Offset < b.Pos.Offset:
			return -1
		case a.Pos.Offset > b.Pos.Offset:
			return 1
		}
		return 0
	})
}
