package nats

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/internal/codec"
)

func (b *Broker) subjectState(subject string) *subjectState {
	b.subjMu.Lock()
	defer b.subjMu.Unlock()
	ss := b.subjects[subject]
	if ss == nil {
		if len(b.subjects) >= maxCachedSubjects {
			// Forgetting is always safe: a state is reloaded when needed,
			// and the stream checks every chained publish.
			clear(b.subjects)
			b.indexed.Clear()
		}
		ss = &subjectState{}
		b.subjects[subject] = ss
	}
	return ss
}

// maxCachedSubjects bounds what a node remembers of subjects.
const maxCachedSubjects = 1 << 16

// lastOn returns the newest message on subject, or nil.
func lastOn(ctx context.Context, s jetstream.Stream, subject string) (*jetstream.RawStreamMsg, error) {
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	return m, err
}

// finalOf reports whether m finishes its subject's topic, and the sequence
// of the final message.
func finalOf(m *jetstream.RawStreamMsg) (uint64, bool) {
	if m == nil {
		return 0, false
	}
	switch m.Header.Get(hdrMarker) {
	case "final":
		of, _ := strconv.ParseUint(m.Header.Get(hdrOf), 10, 64)
		return of, true
	case "":
		if len(m.Data) >= 2 {
			if dm, err := codec.Decode(m.Data); err == nil && dm.Final {
				return m.Sequence, true
			}
		}
	}
	return 0, false
}

// refresh loads the newest message of ss's subject. When the subject went
// back (its messages expired, or the stream was recreated) it checks the
// epoch.
func (b *Broker) refresh(ctx context.Context, subject string, ss *subjectState) error {
	s, _, _ := b.current()
	m, err := lastOn(ctx, s, subject)
	if err != nil {
		return err
	}
	var last uint64
	if m != nil {
		last = m.Sequence
	}
	var info *jetstream.StreamInfo
	if !ss.known || last < ss.last {
		before := b.Epoch()
		info, err = b.ensureStream(ctx, false)
		if err != nil {
			return err
		}
		if epochOf(info) != before {
			// The stream was recreated: read the subject in the new one.
			s, _, _ = b.current()
			if m, err = lastOn(ctx, s, subject); err != nil {
				return err
			}
			last = 0
			if m != nil {
				last = m.Sequence
			}
		}
	}
	ss.known, ss.last, ss.prevBound, ss.lastID = true, last, 0, ""
	if m != nil {
		ss.lastID = m.Header.Get(natsgo.MsgIdHdr)
	}
	ss.finalOf, ss.final = finalOf(m)
	ss.purged = m != nil && m.Header.Get(hdrMarker) == "purge"
	if m == nil {
		// An empty subject: any message it had left with the oldest of
		// the stream, so before its first sequence.
		if info == nil {
			if info, err = s.Info(ctx); err != nil {
				return err
			}
		}
		if first := firstSeq(info); first > 0 {
			ss.prevBound = first - 1
		}
	}
	return nil
}

// publishOn appends a message on subject, chained to the subject's newest
// one (optimistic concurrency: the stream refuses it if another node
// published on the subject meanwhile, and this node then reloads and
// retries). msgID is the Nats-Msg-Id to send (see natsMsgID; "" for a new
// random one). It returns ErrTopicFinished if the subject's topic is
// finished. ss.mu must be held.
func (b *Broker) publishOn(ctx context.Context, subject string, ss *subjectState, hdr natsgo.Header, data []byte, prev uint64, final bool, finalOf uint64, msgID string) (uint64, error) {
	if !ss.known {
		if err := b.refresh(ctx, subject, ss); err != nil {
			return 0, err
		}
	}
	id := msgID
	if id == "" {
		id = nuid.Next()
	}
	for attempt := range 100 {
		if ss.lastID == id {
			// Sent again after the connection was lost, and stored the
			// first time: the subject's newest message is this one.
			return ss.last, nil
		}
		if ss.final {
			return 0, pubsub.ErrTopicFinished
		}
		if attempt > 0 {
			// Another node won the race for this subject: back off a
			// random while (up to ~50 ms) so that contending nodes spread
			// out instead of colliding again at once.
			d := time.Duration(rand.Int64N(int64(min(attempt, 50)) * int64(time.Millisecond)))
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(d):
			}
		}
		h := natsgo.Header{}
		for k, v := range hdr {
			h[k] = v
		}
		p := max(ss.last, prev)
		if ss.last == 0 {
			p = max(p, ss.prevBound)
		}
		h.Set(hdrPrev, strconv.FormatUint(p, 10))
		h.Set(natsgo.MsgIdHdr, id)
		ack, err := b.send(ctx, &natsgo.Msg{Subject: subject, Header: h, Data: data},
			jetstream.WithExpectStream(b.o.Stream), jetstream.WithExpectLastSequencePerSubject(ss.last))
		switch {
		case isWrongLast(err):
			if err := b.refresh(ctx, subject, ss); err != nil {
				return 0, err
			}
			continue
		case err != nil && isNoStream(err) && ctx.Err() == nil:
			// The stream is gone: create it (a new epoch) and retry.
			if _, err := b.ensureStream(ctx, true); err != nil {
				return 0, err
			}
			ss.known = false
			if err := b.refresh(ctx, subject, ss); err != nil {
				return 0, err
			}
			continue
		case err != nil:
			ss.known = false
			return 0, err
		}
		if ack.Duplicate {
			// Sent again after the connection was lost: the first send was
			// stored, and others may have followed it on the subject.
			ss.known = false
			return ack.Sequence, nil
		}
		b.trim.grew(len(data))
		ss.last, ss.lastID, ss.final, ss.finalOf, ss.prevBound = ack.Sequence, id, final, finalOf, 0
		ss.purged = hdr.Get(hdrMarker) == "purge"
		if final && finalOf == 0 {
			ss.finalOf = ack.Sequence
		}
		return ack.Sequence, nil
	}
	return 0, errors.New("too much contention on the subject")
}

// natsMsgID returns the Nats-Msg-Id of a message with the given
// pubsub.Message.ID: JetStream stores it once within the stream's
// Duplicates window, whichever node sends it again. "" for none.
func natsMsgID(id string) string {
	if id == "" {
		return ""
	}
	return "herald:" + id
}

// Publish stores m as one message of the stream, on the subject of its
// first topic, and returns once JetStream has acknowledged it.
func (b *Broker) Publish(ctx context.Context, m *pubsub.Message) (pubsub.Position, error) {
	if err := b.check(ctx); err != nil {
		return pubsub.Position{}, err
	}
	if len(m.Topics) == 0 {
		return pubsub.Position{}, errors.New("nats: publish: no topic")
	}
	topics := dedupe(m.Topics)
	octx := ctx
	ctx, cancel := b.bound(ctx)
	defer cancel()
	first, others := topics[0], topics[1:]

	// The other topics: refuse if finished (checked before publishing, not
	// atomically), and index the first topic's subject under them.
	for _, t := range others {
		ss := b.subjectState(b.subject(t))
		ss.mu.Lock()
		err := b.refresh(ctx, b.subject(t), ss)
		final := ss.final
		ss.mu.Unlock()
		if err != nil {
			return pubsub.Position{}, b.fail(octx, "publish", err)
		}
		if final {
			return pubsub.Position{}, fmt.Errorf("%w: %q", pubsub.ErrTopicFinished, t)
		}
		if err := b.index(ctx, t, b.subject(first)); err != nil {
			return pubsub.Position{}, b.fail(octx, "publish", err)
		}
	}

	blob := codec.Encode(nil, m)
	subject := b.subject(first)
	ss := b.subjectState(subject)
	ss.mu.Lock()
	seq, err := b.publishOn(ctx, subject, ss, nil, blob, 0, m.Final, 0, natsMsgID(m.ID))
	ss.mu.Unlock()
	if errors.Is(err, pubsub.ErrTopicFinished) {
		return pubsub.Position{}, fmt.Errorf("%w: %q", pubsub.ErrTopicFinished, first)
	}
	if err != nil {
		return pubsub.Position{}, b.fail(octx, "publish", err)
	}
	_, _, epoch := b.current()
	m.Pos = pubsub.Position{Epoch: epoch, Offset: seq}
	m.Time = time.Now()

	// What follows cannot be undone: the message is stored. Failures are
	// logged; the state they leave is documented.
	if m.Final {
		for _, t := range others {
			ts := b.subject(t)
			tss := b.subjectState(ts)
			tss.mu.Lock()
			hdr := natsgo.Header{hdrMarker: {"final"}, hdrOf: {strconv.FormatUint(seq, 10)}}
			_, err := b.publishOn(ctx, ts, tss, hdr, nil, 0, true, seq, "")
			tss.mu.Unlock()
			if err != nil && !errors.Is(err, pubsub.ErrTopicFinished) {
				b.o.Logger.Error("nats: could not mark a topic finished", "topic", t, "final", seq, "err", err)
			}
		}
	}
	if m.Retain {
		for _, t := range topics {
			if err := b.storeRetained(ctx, epoch, t, seq, m.Time, blob); err != nil {
				b.o.Logger.Error("nats: could not store a retained message", "topic", t, "seq", seq, "err", err)
			}
		}
	}
	return m.Pos, nil
}

// index records in the state bucket that messages of topic may be stored
// on subject (the subject of another topic they were published with). It
// is written before the message, so the index is never behind the stream.
func (b *Broker) index(ctx context.Context, topic, subject string) error {
	if _, ok := b.indexed.Load(topic + "\x00" + subject); ok {
		return nil
	}
	_, kv, epoch := b.current()
	key := stateKey("x", topic)
	for range 20 {
		entry, err := b.kvGet(ctx, key)
		var rev uint64
		var subjects []string
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			rev = entry.Revision()
			subjects = parseIndex(entry.Value(), epoch)
		}
		if slices.Contains(subjects, subject) {
			b.indexed.Store(topic+"\x00"+subject, struct{}{})
			return nil
		}
		val := []byte(epoch + "\n" + strings.Join(append(subjects, subject), "\n"))
		if rev == 0 {
			_, err = kv.Create(ctx, key, val)
		} else {
			_, err = kv.Update(ctx, key, val, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongLast(err) {
			continue
		}
		if err != nil {
			return err
		}
		b.indexed.Store(topic+"\x00"+subject, struct{}{})
		return nil
	}
	return errors.New("too much contention on the topic index")
}

// parseIndex returns the subjects of an index entry of epoch.
func parseIndex(val []byte, epoch string) []string {
	lines := strings.Split(string(val), "\n")
	if len(lines) < 2 || lines[0] != epoch {
		return nil
	}
	return lines[1:]
}

// storeRetained makes the message at seq the retained one of topic, unless
// the bucket holds a newer one.
func (b *Broker) storeRetained(ctx context.Context, epoch, topic string, seq uint64, t time.Time, blob []byte) error {
	_, kv, _ := b.current()
	key := stateKey("r", topic)
	val := fmt.Appendf(nil, "%s %d %d ", epoch, seq, t.UnixNano())
	val = append(val, blob...)
	for range 20 {
		entry, err := b.kvGet(ctx, key)
		var rev uint64
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			rev = entry.Revision()
			if old, ok := parseRetained(entry.Value(), epoch); ok && old.Pos.Offset >= seq {
				return nil
			}
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, val)
		} else {
			_, err = kv.Update(ctx, key, val, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongLast(err) {
			continue
		}
		return err
	}
	return errors.New("too much contention on a retained message")
}

// parseRetained decodes a retained entry of epoch.
func parseRetained(val []byte, epoch string) (*pubsub.Message, bool) {
	parts := strings.SplitN(string(val), " ", 4)
	if len(parts) != 4 || parts[0] != epoch {
		return nil, false
	}
	seq, err1 := strconv.ParseUint(parts[1], 10, 64)
	ns, err2 := strconv.ParseInt(parts[2], 10, 64)
	m, err3 := codec.Decode([]byte(parts[3]))
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, false
	}
	m.Pos = pubsub.Position{Epoch: epoch, Offset: seq}
	m.Time = time.Unix(0, ns)
	return m, true
}
