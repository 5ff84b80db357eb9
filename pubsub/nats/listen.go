package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/internal/codec"
)

// listenHeartbeat is how often the server signals an idle consumer: a
// consumer lost while the connection stays up (the stream deleted) is
// noticed within about twice that. A lost connection is noticed at once
// (see connState).
const listenHeartbeat = time.Second

// Listen delivers every message published after it took effect, on any
// node, to h, in position order, until ctx ends or the broker is closed:
// it reads the stream's last sequence (calling h.HandleStart with it, if h
// has it), then reads the stream from there with an ephemeral consumer;
// the hub fans out locally. While NATS cannot be reached at the start it
// retries, and calls HandleStart once it could read the stream.
//
// When the stream was deleted or lost (its epoch changed) Listen recreates
// it, calls h.HandleEpoch with the new epoch and delivers the new stream from
// its start. When this node missed messages because they left the stream
// before it could read them, it calls h.HandleEpoch with the unchanged
// epoch: subscribers must resume from history. While NATS cannot be reached
// it waits for the connection to come back, and then makes a new consumer
// at once.
func (b *Broker) Listen(ctx context.Context, h pubsub.Handler) error {
	if b.closed.Load() {
		return pubsub.ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(b.life, cancel)()
	l := &listener{b: b, h: h}
	l.run(ctx)
	return nil
}

type listener struct {
	b           *Broker
	h           pubsub.Handler
	epoch       string
	cursor      uint64 // stream sequence of the last message delivered (or skipped)
	started     bool   // HandleStart was called
	interrupted bool   // live delivery stopped; logged once
}

// interrupt records that live delivery stopped, logging it once.
func (l *listener) interrupt(why any) {
	if !l.interrupted {
		l.b.o.Logger.Warn("nats: live delivery interrupted; retrying", "err", why)
		l.interrupted = true
	}
}

// resume records that live delivery works again, logging it once.
func (l *listener) resume() {
	if l.interrupted {
		l.b.o.Logger.Info("nats: live delivery resumed")
		l.interrupted = false
	}
}

// run keeps a consumer of the stream going until ctx ends. A new one is
// made as soon as the connection is back (the client's status events, see
// connState), not when heartbeats go missing; while JetStream does not
// answer, it retries with a short backoff.
func (l *listener) run(ctx context.Context) {
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		gen, up := l.b.conn.current()
		if !up {
			l.interrupt("the connection to NATS is lost")
			select {
			case <-ctx.Done():
				return
			case <-gen.Done():
			}
			backoff = 0
			continue
		}
		err := l.session(ctx, gen)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			backoff = 0 // the connection changed: go on at once
			continue
		}
		l.interrupt(err)
		backoff = min(max(2*backoff, 25*time.Millisecond), 250*time.Millisecond)
		select {
		case <-ctx.Done():
			return
		case <-gen.Done():
			backoff = 0
		case <-time.After(backoff):
		}
	}
}

// session checks the stream (and its epoch), then consumes it from the
// cursor until an error, or until the connection changes (gen ends): then
// it returns nil.
func (l *listener) session(ctx context.Context, gen context.Context) error {
	cctx, cancel := l.b.bound(ctx)
	info, err := l.b.ensureStream(cctx, false)
	cancel()
	if err != nil {
		return err
	}
	epoch := epochOf(info)
	if !l.started {
		l.started, l.epoch, l.cursor = true, epoch, info.State.LastSeq
		if sh, ok := l.h.(pubsub.StartHandler); ok {
			sh.HandleStart(pubsub.Position{Epoch: epoch, Offset: info.State.LastSeq})
		}
	}
	if epoch != l.epoch {
		l.b.o.Logger.Warn("nats: the log's epoch changed: the stream was deleted or lost and created again", "old", l.epoch, "new", epoch)
		l.epoch, l.cursor = epoch, 0
		l.h.HandleEpoch(epoch)
	}
	s, _, _ := l.b.current()
	cctx, cancel = l.b.bound(ctx)
	cons, err := s.CreateConsumer(cctx, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       l.cursor + 1,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
		Replicas:          1,
	})
	cancel()
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.DeleteConsumer(dctx, cons.CachedInfo().Name)
		cancel()
	}()
	it, err := cons.Messages(jetstream.PullHeartbeat(listenHeartbeat), jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	stopGen := context.AfterFunc(gen, it.Stop)
	defer stopGen()
	l.resume()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) && (ctx.Err() != nil || gen.Err() != nil) {
				return nil
			}
			return err
		}
		md, err := msg.Metadata()
		if err != nil {
			continue
		}
		seq := md.Sequence.Stream
		if seq <= l.cursor {
			continue
		}
		if seq != l.cursor+1 {
			l.b.o.Logger.Warn("nats: this node missed live messages (they left the stream before it read them); ending streams so that clients resume from history",
				"from", l.cursor+1, "to", seq-1)
			l.h.HandleEpoch(l.epoch)
		}
		l.cursor = seq
		if msg.Headers().Get(hdrMarker) != "" {
			continue
		}
		m, err := codec.Decode(msg.Data())
		if err != nil {
			l.b.o.Logger.Error("nats: skipping an undecodable message", "seq", seq, "err", err)
			continue
		}
		m.Pos = pubsub.Position{Epoch: l.epoch, Offset: seq}
		m.Time = md.Timestamp
		l.h.HandleMessage(m)
	}
}
