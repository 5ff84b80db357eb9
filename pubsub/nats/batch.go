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

var _ pubsub.BatchPublisher = (*Broker)(nil)

// PublishBatch publishes msgs in order, with the effect of Publish called
// for each. It implements pubsub.BatchPublisher.
//
// Consecutive messages of one topic each, neither retained nor final, on
// different topics, are a wave: they are sent at once (JetStream async
// publishes, in order on one connection, so stored in order) and their
// acknowledgements awaited together. Each is chained to its subject's
// newest message as Publish chains it (the stream refuses it if another
// message came first on the subject), so finished topics and the
// per-subject chain that makes truncation exact hold as with Publish;
// while this node writes alone the chain is proven for all subjects at
// once instead (each message expects the stream's last message to be the
// one sent before it, see fastPath), which the server checks for less. A
// batch's second message on a subject starts the next wave; a retained,
// final or multi-topic message is published on its own with Publish.
//
// A message of a wave that the stream refuses because another node
// published on its subject meanwhile, or whose acknowledgement is lost, is
// sent again on its own with the same Nats-Msg-Id once the wave is
// acknowledged (JetStream stores it once): it is then stored after the
// wave's later messages, which are on other topics. If another node
// finished its topic meanwhile, PublishBatch returns ErrTopicFinished for
// it although the wave's later messages are stored.
func (b *Broker) PublishBatch(ctx context.Context, msgs []*pubsub.Message) (int, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	for i := 0; i < len(msgs); {
		if !plain(msgs[i]) {
			if _, err := b.Publish(ctx, msgs[i]); err != nil {
				return i, err
			}
			i++
			continue
		}
		n, err := b.wave(ctx, msgs[i:])
		i += n
		if err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

// plain reports whether m may go in a wave: one topic, neither retained
// nor final.
func plain(m *pubsub.Message) bool {
	return len(m.Topics) == 1 && !m.Retain && !m.Final
}

// sent is one message of a wave.
type sent struct {
	m       *pubsub.Message
	subject string
	ss      *subjectState
	id      string // its Nats-Msg-Id
	blob    []byte
	msg     *natsgo.Msg // to send, with opts; nil: not sent
	opts    []jetstream.PublishOpt
	fut     jetstream.PubAckFuture // nil: not sent (send again on its own)
	seq     uint64                 // when known without an acknowledgement
	fast    bool                   // sent without the per-subject check (see fastPath)
}

// wave publishes the first messages of msgs that form a wave (see
// PublishBatch) and returns how many it published.
func (b *Broker) wave(octx context.Context, msgs []*pubsub.Message) (int, error) {
	ctx, cancel := b.bound(octx)
	defer cancel()
	// One wave of this node at a time may skip the per-subject check (see
	// fastPath); the others go by the subjects' chains.
	var (
		run    *fastRun
		gen    uint64
		base   uint64
		prevID string // the Nats-Msg-Id of the stream's last message if all went well
		ready  bool
		done   bool // every message sent was settled
	)
	// Only on a stream of one replica: that is where the server's check of
	// the expected last message id was read and tested against this use.
	if b.o.Replicas == 1 && b.fast.mu.TryLock() {
		defer b.fast.mu.Unlock()
		gen, base, prevID, ready = b.fast.start(fastMaxAge(b.streamConfig().Duplicates))
		run = b.fast.run(gen, base, ready)
		defer func() {
			if !done {
				run.broken() // returned early: later messages may be stored
			}
			b.fast.end(run)
		}()
	}
	var (
		out      []*sent
		subjects = make(map[string]bool)
		stop     error // why the wave stopped before a message it could not send
	)
	for _, m := range msgs {
		if !plain(m) {
			break
		}
		subject := b.subject(m.Topics[0])
		if subjects[subject] {
			break
		}
		subjects[subject] = true
		ss := b.subjectState(subject)
		s := &sent{m: m, subject: subject, ss: ss, id: natsMsgID(m.ID), blob: codec.Encode(nil, m)}
		if s.id == "" {
			s.id = nuid.Next()
		}
		ss.mu.Lock()
		var err error
		if !ss.known {
			err = b.refresh(ctx, subject, ss)
		}
		last, prevBound, lastID, final := ss.last, ss.prevBound, ss.lastID, ss.final
		s.fast = ready && ss.known && ss.fastGen.Load() == gen
		ss.mu.Unlock()
		switch {
		case err != nil:
			stop = b.fail(octx, "publish", err)
		case lastID == s.id:
			s.seq = last // sent again after the connection was lost, and stored
		case final:
			stop = fmt.Errorf("%w: %q", pubsub.ErrTopicFinished, m.Topics[0])
		}
		if stop != nil {
			break
		}
		if s.seq == 0 {
			p := last
			if last == 0 {
				p = max(p, prevBound)
			}
			h := natsgo.Header{hdrPrev: {strconv.FormatUint(p, 10)}, natsgo.MsgIdHdr: {s.id}}
			opts := []jetstream.PublishOpt{jetstream.WithExpectStream(b.o.Stream)}
			if ready {
				// Stored only right after the wave's message before it
				// (or the one at base): nothing came between, from any
				// node. Every message of the wave must be sent so, or
				// the next one's expectation would prove nothing.
				opts = append(opts, jetstream.WithExpectLastMsgID(prevID))
			}
			if s.fast {
				// What this node knows of the subject is exact at base,
				// and so now: no per-subject check needed.
				b.fast.sent.Add(1)
			} else {
				opts = append(opts, jetstream.WithExpectLastSequencePerSubject(last))
			}
			s.msg, s.opts = &natsgo.Msg{Subject: subject, Header: h, Data: s.blob}, opts
			prevID = s.id
		}
		out = append(out, s)
	}
	// Sent back to back, once all are ready, so that the client writes
	// them in few flushes and the server reads them in few system calls
	// (sent as they were prepared, between refreshes and encodings, they
	// may go out one by one).
	for _, s := range out {
		if s.msg != nil {
			s.fut, _ = b.js.PublishMsgAsync(s.msg, s.opts...)
		}
	}

	// The acknowledgements, in order; what failed is sent again on its own.
	// The wave's messages stored one right after the other (from the
	// first, or from base when the wave started in step) are known exact
	// at the last of them.
	now := time.Now()
	for i, s := range out {
		if s.seq == 0 {
			seq, err := b.settle(ctx, s, run)
			if errors.Is(err, pubsub.ErrTopicFinished) {
				return i, fmt.Errorf("%w: %q", pubsub.ErrTopicFinished, s.m.Topics[0])
			}
			if err != nil {
				return i, b.fail(octx, "publish", err)
			}
			s.seq = seq
		} else {
			run.broken() // not stored now: what lies between is unknown
		}
		_, _, epoch := b.current()
		s.m.Pos = pubsub.Position{Epoch: epoch, Offset: s.seq}
		s.m.Time = now
	}
	done = true
	return len(out), stop
}

// settle waits for s's acknowledgement and records it in its subject's
// state; when s was refused or its acknowledgement lost, it sends s again
// on its own, chained as Publish chains it.
func (b *Broker) settle(ctx context.Context, s *sent, run *fastRun) (uint64, error) {
	var ack *jetstream.PubAck
	var err error
	if s.fut == nil {
		err = errors.New("not sent")
	} else {
		select {
		case ack = <-s.fut.Ok():
		case err = <-s.fut.Err():
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	s.ss.mu.Lock()
	defer s.ss.mu.Unlock()
	if err == nil {
		b.trim.grew(len(s.blob))
		if ack.Duplicate {
			s.ss.known = false // stored before; others may have followed it
			run.broken()
		} else if ack.Sequence > s.ss.last {
			s.ss.last, s.ss.lastID, s.ss.final, s.ss.finalOf, s.ss.prevBound, s.ss.purged = ack.Sequence, s.id, false, 0, 0, false
			run.stored(s.ss, ack.Sequence, s.id)
		} else {
			run.broken()
		}
		return ack.Sequence, nil
	}
	run.broken()
	if isWrongLastMsgID(err) {
		// Something was stored since this node's view. Publish on the
		// subjects' chains for a while (see fastPath).
		b.fast.refused()
	}
	if isWrongLast(err) {
		s.ss.known = false // another node published on the subject
	}
	return b.publishOn(ctx, s.subject, s.ss, nil, s.blob, 0, false, 0, s.id)
}
