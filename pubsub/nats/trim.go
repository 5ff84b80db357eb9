package nats

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/pubsub/internal/fair"
)

// trimmer shares Retention.MaxBytes fairly between topics (see
// pubsub.Retention): JetStream's own byte limit evicts the oldest messages
// of the stream whatever their subject, so the stream has none, and every
// node runs a trimmer instead (only the holder of its lease trims).
//
// The trimmer follows the stream with an ordered, headers-only consumer
// (from its first message when it starts, so it counts what the stream
// holds) and keeps a model of it: each subject's messages, by sequence,
// size and time. After each message, while the model is over the bound,
// it drops the oldest message of the subject with the most evictable bytes
// (all but its newest: a subject keeps its newest message, which holds its
// finished state and the chain of Herald-Prev that makes truncation exact),
// and purges that subject below the next sequence. Purges are batched by a
// second goroutine. One node of the stream trims at a time: the holder of
// a lease in the state bucket (see lease); the others only watch the
// lease, and the one that takes it over (its holder closed, or silent for
// the lease's TTL) reads the stream from its start again. Every trimmer
// computes the same drops from the same stream, and purges are
// idempotent, so two holders at once only repeat work. The model mirrors
// JetStream's own evictions (per-subject count, age) and Herald's purges
// (their marker).
//
// The consumer costs the server CPU for every message it delivers (2–7 µs
// a message, see docs/scaling.md), so the trimmer does not start it before
// the stream may hold half the bound: while asleep it asks the stream's
// size (one request a second, and at once when this node's own publishes
// may have filled the headroom it saw) and wakes when
// State.Bytes + messageOverhead×State.Msgs, an upper bound of what its
// model would count, reaches max/2. Below that nothing can be over the
// bound, so nothing is purged late; once awake it reads the stream from
// its first message and stays awake.
//
// Lock order: trimmer.mu only; no broker lock is taken while it is held.
type trimmer struct {
	b     *Broker
	max   int64
	lease *lease // one node of the stream trims at a time

	kick chan struct{} // a purge is pending

	// While asleep: wake is signalled when unseen (bytes this node
	// published since the last look at the stream) reaches headroom.
	wake     chan struct{}
	awake    atomic.Bool
	unseen   atomic.Int64
	headroom atomic.Int64
	looks    atomic.Int64 // how often it asked the stream's size (tests)

	mu       sync.Mutex
	epoch    string                // of the model
	next     uint64                // next stream sequence to read
	subjects map[string]*subjModel // by subject
	total    int64                 // bytes of the model
	fair     fair.Heap[*subjModel] // subjects with evictable bytes
	pending  map[string]uint64     // subject -> purge below this sequence
	failing  bool                  // purges fail (logged once)
	sizeOf   func(hdr natsgo.Header) int64
}

// subjModel is what the trimmer knows of one subject.
type subjModel struct {
	fair.Entry // its place in trimmer.fair: bytes but the newest message's
	name       string
	msgs       []msgModel // oldest first
	bytes      int64
}

type msgModel struct {
	seq  uint64
	size int64
	time int64 // Unix nanoseconds
}

// messageOverhead approximates what pubsub.Message.Size counts beyond a
// stored message's payload (its epoch, position, time, per-topic cost).
const messageOverhead = 128

func newTrimmer(b *Broker) *trimmer {
	return &trimmer{
		b: b, max: b.o.Retention.MaxBytes, lease: newLease(b),
		kick:     make(chan struct{}, 1),
		wake:     make(chan struct{}, 1),
		subjects: make(map[string]*subjModel),
		pending:  make(map[string]uint64),
		sizeOf: func(hdr natsgo.Header) int64 {
			n, _ := strconv.ParseInt(hdr.Get(natsgo.MsgSize), 10, 64)
			return n + messageOverhead
		},
	}
}

// trimLook is how often a sleeping trimmer asks the stream's size.
const trimLook = time.Second

// grew tells a sleeping trimmer that this node stored a message of n bytes.
func (tr *trimmer) grew(n int) {
	if tr == nil || tr.awake.Load() {
		return
	}
	if tr.unseen.Add(int64(n)+messageOverhead) >= tr.headroom.Load() {
		select {
		case tr.wake <- struct{}{}:
		default:
		}
	}
}

// sleep waits until the stream may hold half the bound (see trimmer); it
// reports false if ctx ended first.
func (tr *trimmer) sleep(ctx context.Context) bool {
	t := time.NewTicker(trimLook)
	defer t.Stop()
	for {
		// Reset before asking: what is published meanwhile is counted
		// twice at worst, which wakes the trimmer early, never late.
		tr.unseen.Store(0)
		cctx, cancel := tr.b.bound(ctx)
		info, err := tr.b.ensureStream(cctx, false)
		cancel()
		tr.looks.Add(1)
		if err == nil {
			held := int64(info.State.Bytes) + messageOverhead*int64(info.State.Msgs)
			if held >= tr.max/2 {
				tr.awake.Store(true)
				return true
			}
			tr.headroom.Store(tr.max/2 - held)
		}
		select {
		case <-ctx.Done():
			return false
		case <-tr.wake:
		case <-t.C:
		}
	}
}

// run trims while this node holds the trimmer's lease (one node of the
// stream at a time), until ctx ends.
func (tr *trimmer) run(ctx context.Context) {
	for {
		hctx, release := tr.lease.hold(ctx)
		if hctx == nil {
			return
		}
		tr.b.o.Logger.Debug("nats: this node trims history beyond --history-max-bytes")
		tr.follow(hctx)
		release()
		tr.b.o.Logger.Debug("nats: this node no longer trims history")
		if ctx.Err() != nil {
			return
		}
	}
}

// follow forgets the model, sleeps while the stream holds less than half
// the bound, then follows the stream from its start until ctx ends,
// starting again (with backoff) when the consumer fails.
func (tr *trimmer) follow(ctx context.Context) {
	tr.mu.Lock()
	tr.resetLocked("") // another node trimmed meanwhile: read it all again
	tr.mu.Unlock()
	tr.awake.Store(false)
	defer tr.awake.Store(false)
	if !tr.sleep(ctx) {
		return
	}
	log := tr.b.o.Logger
	backoff := time.Duration(0)
	failing := false
	for ctx.Err() == nil {
		err := tr.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil && !failing {
			log.Warn("nats: the history trimmer cannot follow the stream; retrying", "err", err)
			failing = true
		}
		if err == nil && failing {
			log.Info("nats: the history trimmer follows the stream again")
			failing = false
		}
		backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// session consumes the stream from where the model stands until an error.
func (tr *trimmer) session(ctx context.Context) error {
	cctx, cancel := tr.b.bound(ctx)
	info, err := tr.b.ensureStream(cctx, false)
	cancel()
	if err != nil {
		return err
	}
	tr.mu.Lock()
	if e := epochOf(info); e != tr.epoch {
		tr.resetLocked(e)
	}
	from := tr.next
	tr.mu.Unlock()
	s, _, _ := tr.b.current()
	cfg := jetstream.OrderedConsumerConfig{HeadersOnly: true, DeliverPolicy: jetstream.DeliverAllPolicy, InactiveThreshold: time.Minute}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	cctx, cancel = tr.b.bound(ctx)
	cons, err := s.OrderedConsumer(cctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		md, err := msg.Metadata()
		if err != nil {
			continue
		}
		hdr := msg.Headers()
		tr.add(msg.Subject(), md.Sequence.Stream, tr.sizeOf(hdr), md.Timestamp, hdr.Get(hdrMarker))
	}
}

// resetLocked forgets the model: the stream is another one. tr.mu is held.
func (tr *trimmer) resetLocked(epoch string) {
	tr.epoch, tr.next, tr.total = epoch, 1, 0
	clear(tr.subjects)
	clear(tr.pending)
	tr.fair.Reset()
}

// add records a message of the stream, then applies the bound.
func (tr *trimmer) add(subject string, seq uint64, size int64, t time.Time, marker string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if seq < tr.next {
		return // seen before the consumer was recreated
	}
	tr.next = seq + 1
	sm := tr.subjects[subject]
	if sm == nil {
		sm = &subjModel{name: subject}
		tr.subjects[subject] = sm
	}
	if marker == "purge" {
		// The subject was purged before this marker was written.
		for len(sm.msgs) > 0 {
			tr.dropFrontLocked(sm)
		}
	}
	sm.msgs = append(sm.msgs, msgModel{seq: seq, size: size, time: t.UnixNano()})
	sm.bytes += size
	tr.total += size
	if max := tr.b.o.Retention.MaxEvents; max > 0 {
		for len(sm.msgs) > max {
			tr.dropFrontLocked(sm) // JetStream evicted it (max_msgs_per_subject)
		}
	}
	tr.fixLocked(sm)
	purge := false
	for tr.total > tr.max {
		top, ok := tr.fair.Top()
		if !ok {
			break
		}
		seq := top.msgs[0].seq
		tr.dropFrontLocked(top)
		tr.fixLocked(top)
		tr.pending[top.name] = max(tr.pending[top.name], seq+1)
		purge = true
	}
	if purge {
		select {
		case tr.kick <- struct{}{}:
		default:
		}
	}
}

// dropFrontLocked removes a subject's oldest message from the model.
func (tr *trimmer) dropFrontLocked(sm *subjModel) {
	m := sm.msgs[0]
	sm.msgs[0] = msgModel{}
	sm.msgs = sm.msgs[1:]
	sm.bytes -= m.size
	tr.total -= m.size
}

// fixLocked updates sm's place in the fair heap, and forgets an empty
// subject.
func (tr *trimmer) fixLocked(sm *subjModel) {
	var evictable int64
	if n := len(sm.msgs); n >= 2 {
		evictable = sm.bytes - sm.msgs[n-1].size
	}
	tr.fair.Set(sm, evictable)
	if len(sm.msgs) == 0 {
		delete(tr.subjects, sm.name)
	}
}

// purger sends the pending purges, at once when add asks and at least
// every sweep interval, and mirrors age-based eviction in the model.
func (tr *trimmer) purger(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tr.kick:
		case <-t.C:
			tr.age()
		}
		tr.flush(ctx)
	}
}

// age drops from the model the messages JetStream evicted by age.
func (tr *trimmer) age() {
	maxAge := tr.b.o.Retention.MaxAge
	if maxAge <= 0 {
		return
	}
	cutoff := time.Now().Add(-maxAge).UnixNano()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, sm := range tr.subjects {
		n := len(sm.msgs)
		for len(sm.msgs) > 0 && sm.msgs[0].time < cutoff {
			tr.dropFrontLocked(sm)
		}
		if len(sm.msgs) != n {
			tr.fixLocked(sm)
		}
	}
}

// flush purges what add dropped from the model.
func (tr *trimmer) flush(ctx context.Context) {
	tr.mu.Lock()
	if len(tr.pending) == 0 {
		tr.mu.Unlock()
		return
	}
	pending, epoch := tr.pending, tr.epoch
	tr.pending = make(map[string]uint64, len(pending))
	tr.mu.Unlock()
	s, _, current := tr.b.current()
	if current != epoch {
		return // the stream of these purges is gone
	}
	var failed error
	for subject, below := range pending {
		cctx, cancel := tr.b.bound(ctx)
		err := s.Purge(cctx, jetstream.WithPurgeSubject(subject), jetstream.WithPurgeSequence(below))
		cancel()
		if err != nil && ctx.Err() == nil {
			failed = err
			tr.mu.Lock()
			if tr.epoch == epoch {
				tr.pending[subject] = max(tr.pending[subject], below)
			}
			tr.mu.Unlock()
		}
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	switch {
	case failed != nil && !tr.failing:
		tr.b.o.Logger.Warn("nats: cannot purge history beyond --history-max-bytes; retrying", "err", failed)
		tr.failing = true
	case failed == nil && tr.failing:
		tr.b.o.Logger.Info("nats: purging history beyond --history-max-bytes works again")
		tr.failing = false
	}
}
