package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/pubsub"
)

// listenBlock is how long one XREAD waits for news. It bounds how long
// Listen takes to notice that its context ended (go-redis cannot interrupt
// a blocked read), and how often an idle node checks the epoch.
const listenBlock = time.Second

// listenBatch is the most live-stream entries (published batches) one XREAD
// returns.
const listenBatch = 64

// Listen delivers every message published after it took effect, on any
// node, to h, in position order, until ctx ends or the broker is closed:
// it reads the log's head (calling h.HandleStart with it, if h has it),
// then reads the live stream (every published batch, in order) from there
// with XREAD BLOCK: no polling, one reader per node and shard listened to.
// While Redis cannot be reached at the start it retries, and calls
// HandleStart once it could read the head.
//
// When Redis lost the log (its epoch changed) it calls h.HandleEpoch with
// the new epoch and delivers the new log from its start. When this node
// missed messages because the live stream was trimmed past them while it
// could not read (it was cut off from Redis, or stalled, for longer than
// Options.LiveWindow lasts), it calls h.HandleEpoch with the unchanged
// epoch: subscribers must resume from history. While Redis cannot be
// reached it retries with backoff.
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
	b         *Broker
	h         pubsub.Handler
	epoch     string
	cursor    uint64 // offset of the last message delivered (or skipped)
	live      uint64 // id of the last live-stream entry read ("<live>-<liveSeq>")
	liveSeq   uint64 // 0 but after an entry publish.lua did not write
	resync    bool   // the cursor is unknown (after an undecodable entry): the next entry sets it
	lastEpoch string // id of the last epoch announcement seen
	started   bool
	recheck   bool // the epoch must be checked before the next read
}

// run reads the log until ctx ends. While Redis cannot be reached it
// retries with a short backoff, and at once when a Publish or Read of this
// node succeeds (Redis is back): live delivery resumes within milliseconds
// of the first publish Redis accepts. It logs the interruption and the
// resumption once each.
func (l *listener) run(ctx context.Context) {
	log := l.b.o.Logger
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		err := l.step(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !l.b.listenDown.Swap(true) {
				log.Warn("redis: live delivery interrupted; retrying", "err", err)
			}
			backoff = min(max(2*backoff, 25*time.Millisecond), 250*time.Millisecond)
			select {
			case <-ctx.Done():
				return
			case <-l.b.up:
			case <-time.After(backoff):
			}
			l.recheck = true
			continue
		}
		if l.b.listenDown.Swap(false) {
			log.Info("redis: live delivery resumed")
		}
		backoff = 0
	}
}

// step checks the epoch when needed, then reads and delivers one batch.
func (l *listener) step(ctx context.Context) error {
	if !l.started || l.recheck {
		st, err := l.b.start(ctx)
		if err != nil {
			return err
		}
		if !l.started {
			l.epoch, l.cursor, l.live, l.liveSeq = st.epoch, st.head, st.live, 0
			l.b.setEpoch(st.epoch)
			if sh, ok := l.h.(pubsub.StartHandler); ok {
				sh.HandleStart(pubsub.Position{Epoch: st.epoch, Offset: st.head})
			}
		}
		if st.epoch != l.epoch {
			l.b.o.Logger.Warn("redis: the log's epoch changed: Redis lost Herald's data or the log was recreated", "old", l.epoch, "new", st.epoch)
			l.b.setEpoch(st.epoch)
			l.epoch = st.epoch
			l.cursor, l.live, l.liveSeq = 0, 0, 0 // deliver the new log from its start
			l.h.HandleEpoch(st.epoch)
		}
		if !l.started {
			l.lastEpoch = st.lastEpoch
		}
		l.started, l.recheck = true, false
	}
	k := l.b.keys(l.epoch)
	streams, err := l.b.rdb.XRead(ctx, &goredis.XReadArgs{
		Streams: []string{k.live, l.b.epochs, strconv.FormatUint(l.live, 10) + "-" + strconv.FormatUint(l.liveSeq, 10), l.lastEpoch},
		Count:   listenBatch,
		Block:   listenBlock,
	}).Result()
	if errors.Is(err, goredis.Nil) {
		l.recheck = true // idle: make sure the log still exists
		return nil
	}
	if err != nil {
		return err
	}
	for _, s := range streams {
		if s.Stream == l.b.epochs {
			if n := len(s.Messages); n > 0 {
				l.lastEpoch = s.Messages[n-1].ID
				l.recheck = true
			}
			continue
		}
		for _, xm := range s.Messages {
			if err := l.deliver(xm); err != nil {
				return err
			}
		}
	}
	return nil
}

// deliver delivers the messages of one live-stream entry (a published
// batch) that are after the cursor.
func (l *listener) deliver(xm goredis.XMessage) error {
	ms0, sq0, _ := strings.Cut(xm.ID, "-")
	id, err := strconv.ParseUint(ms0, 10, 64)
	sq, errSeq := strconv.ParseUint(sq0, 10, 64)
	if err != nil || errSeq != nil {
		return fmt.Errorf("redis: live entry with id %q", xm.ID) // not a stream id
	}
	prev := l.live
	l.live, l.liveSeq = id, sq
	seq, err1 := strconv.ParseUint(str(xm.Values["s"]), 10, 64)
	ms, err2 := strconv.ParseUint(str(xm.Values["t"]), 10, 64)
	n, err3 := strconv.Atoi(str(xm.Values["n"]))
	fresh := str(xm.Values["f"])
	raw := str(xm.Values["p"])
	blobs, err4 := decodeBlobs(raw)
	if sq != 0 {
		// Not written by publish.lua (its ids are "<bytes>-0"): read on
		// past it.
		err1 = fmt.Errorf("id %q", xm.ID)
	}
	if err := errors.Join(err1, err2, err3, err4); err != nil || n > len(blobs) || (fresh != "" && len(fresh) != n) {
		// Its offsets are unknown: the node can no longer tell what it missed.
		l.b.o.Logger.Error("redis: undecodable live entry; ending streams so that clients resume from history", "id", xm.ID, "err", err)
		l.h.HandleEpoch(l.epoch)
		l.resync = true
		return nil
	}
	if l.resync {
		// After an undecodable entry: the streams were ended already, and
		// the cursor is unknown. This entry follows it directly when its
		// id is the undecodable one's plus what it adds (publish.lua: its
		// batch payload's length and 64); otherwise the stream was
		// trimmed past the entries between, published after the
		// subscribers resynced.
		if id != prev+uint64(len(raw))+64 {
			l.b.o.Logger.Warn("redis: this node missed live messages after an undecodable entry (the live stream was trimmed past them); ending streams so that clients resume from history",
				"to", seq)
			l.h.HandleEpoch(l.epoch)
		}
		l.cursor, l.resync = seq, false
	}
	if seq > l.cursor {
		l.b.o.Logger.Warn("redis: this node missed live messages (the live stream was trimmed past them); ending streams so that clients resume from history",
			"from", l.cursor+1, "to", seq)
		l.h.HandleEpoch(l.epoch)
	}
	for i := range n {
		if fresh != "" && fresh[i] != '1' {
			continue
		}
		seq++
		if seq <= l.cursor {
			continue
		}
		l.cursor = seq
		m, err := decode(l.epoch, seq, ms, blobs[i])
		if err != nil {
			l.b.o.Logger.Error("redis: skipping an undecodable message", "err", err)
			continue
		}
		l.h.HandleMessage(m)
	}
	return nil
}
