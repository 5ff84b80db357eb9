// Package memory is Herald's default broker: an in-process log with bounded
// history. Its epoch is new every time a Broker is created, so clients of a
// restarted server are told that history was lost.
package memory

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/internal/fair"
)

// Broker is an in-memory pubsub.Broker. Create one with New.
//
// Lock order: Broker.mu is held while the Handler's HandleMessage runs, so a
// Handler must never call back into the Broker.
//
// Retention.MaxBytes is shared fairly between topics (see fair.go and
// pubsub.Retention). Truncation is exact per topic: each topic remembers the
// highest offset it evicted. A topic with no history, retained or final
// message left is forgotten, and a tombstone keeps that offset; only when
// more than
// MaxTombstones topics have been forgotten are the oldest tombstones folded
// into one watermark that applies to every unknown topic (a client may then
// get a spurious history-truncated reset, never a silent gap).
type Broker struct {
	retention pubsub.Retention
	now       func() time.Time
	maxTombs  int

	mu        sync.Mutex
	epoch     string
	seq       uint64
	topics    map[string]*topicLog
	all       []*entry // entries in offset order (a queue: all[head:]), some no longer held
	head      int
	live      int // entries of all[head:] that some topic still holds
	bytes     int64
	tombs     map[string]uint64          // forgotten topic → highest offset it evicted
	tombOrder []tomb                     // tombstones, oldest first (may hold stale ones)
	fair      fair.Heap[*topicLog]       // topics with evictable bytes (see fair.go)
	forgotten uint64                     // highest offset of the topics whose tombstones were dropped
	handlers  []*listening               // one per running Listen (several hubs may share the broker)
	ids       map[string]*pubsub.Message // recent messages by ID (idempotent publishing)
	idOrder   []*pubsub.Message          // the same, oldest first
	closed    bool
	done      chan struct{}
	wg        sync.WaitGroup
}

type tomb struct {
	topic string
	hi    uint64
}

var (
	_ pubsub.Broker         = (*Broker)(nil)
	_ pubsub.Purger         = (*Broker)(nil)
	_ pubsub.BatchPublisher = (*Broker)(nil)
)

type entry struct {
	m    *pubsub.Message
	size int
	refs int // topic logs still holding it
}

type topicLog struct {
	fair.Entry          // its place in Broker.fair (see fair.go)
	log        []*entry // in offset order
	bytes      int64    // size of the entries in log
	evicted    uint64   // highest offset evicted from this topic's log
	retained   *pubsub.Message
	final      *pubsub.Message
}

// Options configure a Broker. The zero value is valid.
type Options struct {
	// Retention bounds history. Zero fields mean no limit of that kind.
	Retention pubsub.Retention
	// Epoch sets the log's epoch; empty means a new random one.
	Epoch string
	// SweepInterval is how often age-based retention runs. Default 1s.
	SweepInterval time.Duration
	// MaxTombstones bounds how many forgotten topics keep their own
	// truncation offset (see Broker). Default 65536.
	MaxTombstones int
}

// New returns a Broker. Call Close to stop its background sweeper.
func New(opts *Options) *Broker {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Epoch == "" {
		o.Epoch = pubsub.NewEpoch()
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Second
	}
	if o.MaxTombstones <= 0 {
		o.MaxTombstones = 1 << 16
	}
	b := &Broker{
		retention: o.Retention,
		now:       time.Now,
		maxTombs:  o.MaxTombstones,
		epoch:     o.Epoch,
		topics:    make(map[string]*topicLog),
		tombs:     make(map[string]uint64),
		done:      make(chan struct{}),
	}
	if o.Retention.MaxAge > 0 {
		b.wg.Add(1)
		go b.sweeper(o.SweepInterval)
	}
	return b
}

// Epoch returns the log's epoch.
func (b *Broker) Epoch() string { return b.epoch }

// Publish appends m to the log and hands it to the Handler before returning.
func (b *Broker) Publish(ctx context.Context, m *pubsub.Message) (pubsub.Position, error) {
	if err := ctx.Err(); err != nil {
		return pubsub.Position{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.publishLocked(m, b.now(), true)
}

// PublishBatch publishes msgs in order under one lock, as consecutive
// messages of the log. It implements pubsub.BatchPublisher.
func (b *Broker) PublishBatch(ctx context.Context, msgs []*pubsub.Message) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	for i, m := range msgs {
		if _, err := b.publishLocked(m, now, true); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

// publishLocked appends m, stamped with now; with dedupe, a message whose
// ID was published recently is not appended again. b.mu is held.
func (b *Broker) publishLocked(m *pubsub.Message, now time.Time, dedupe bool) (pubsub.Position, error) {
	if len(m.Topics) == 0 {
		return pubsub.Position{}, fmt.Errorf("memory: publish: no topic")
	}
	if b.closed {
		return pubsub.Position{}, pubsub.ErrClosed
	}
	if m.ID != "" && dedupe {
		if first, ok := b.recentID(m.ID, now); ok {
			// Published again: the first one stands.
			m.Pos, m.Time = first.Pos, first.Time
			return m.Pos, nil
		}
	}
	for _, t := range m.Topics {
		if tl := b.topics[t]; tl != nil && tl.final != nil {
			return pubsub.Position{}, fmt.Errorf("%w: %q", pubsub.ErrTopicFinished, t)
		}
	}
	b.seq++
	m.Pos = pubsub.Position{Epoch: b.epoch, Offset: b.seq}
	m.Time = now
	e := &entry{m: m, size: m.Size(), refs: len(m.Topics)}
	b.all = append(b.all, e)
	b.live++
	b.bytes += int64(e.size)
	for _, t := range m.Topics {
		tl := b.topics[t]
		if tl == nil {
			tl = &topicLog{evicted: b.evictedOf(t)}
			delete(b.tombs, t)
			b.topics[t] = tl
		}
		tl.log = append(tl.log, e)
		tl.bytes += int64(e.size)
		if m.Retain {
			tl.retained = m
		}
		if m.Final {
			tl.final = m
		}
		if max := b.retention.MaxEvents; max > 0 {
			for len(tl.log) > max {
				b.dropFront(tl)
			}
		}
		b.fix(tl)
	}
	if b.retention.MaxBytes > 0 {
		b.enforceBytes()
	}
	b.compact()
	if m.ID != "" && dedupe {
		b.rememberID(m)
	}
	for _, l := range b.handlers {
		l.h.HandleMessage(m)
	}
	return m.Pos, nil
}

// maxIDs bounds the IDs remembered for idempotent publishing, besides
// pubsub.DedupeWindow.
const maxIDs = 1 << 16

// recentID returns the message published with id within the dedupe
// window, forgetting older IDs. b.mu is held.
func (b *Broker) recentID(id string, now time.Time) (*pubsub.Message, bool) {
	for len(b.idOrder) > 0 && (now.Sub(b.idOrder[0].Time) > pubsub.DedupeWindow || len(b.idOrder) > maxIDs) {
		old := b.idOrder[0]
		b.idOrder[0] = nil
		b.idOrder = b.idOrder[1:]
		if b.ids[old.ID] == old {
			delete(b.ids, old.ID)
		}
	}
	m, ok := b.ids[id]
	return m, ok
}

// rememberID records m's ID (with its position and time only). b.mu is held.
func (b *Broker) rememberID(m *pubsub.Message) {
	if b.ids == nil {
		b.ids = make(map[string]*pubsub.Message)
	}
	r := &pubsub.Message{ID: m.ID, Pos: m.Pos, Time: m.Time}
	b.ids[m.ID] = r
	b.idOrder = append(b.idOrder, r)
}

// dropFront evicts the oldest entry of one topic's log.
func (b *Broker) dropFront(tl *topicLog) {
	e := tl.log[0]
	tl.log[0] = nil
	tl.log = tl.log[1:]
	tl.bytes -= int64(e.size)
	tl.evicted = max(tl.evicted, e.m.Pos.Offset)
	b.release(e)
}

func (b *Broker) release(e *entry) {
	e.refs--
	if e.refs == 0 {
		b.bytes -= int64(e.size)
		b.live--
		e.m = nil // the entry may wait in b.all for a while: free the message now
	}
}

// compact drops from b.all the entries no topic holds any more, once they
// are the majority: without it, a log bounded only per topic (no age or
// byte limit) would keep an entry for every message ever published.
func (b *Broker) compact() {
	n := len(b.all) - b.head
	if dead := n - b.live; dead < 1024 || dead*2 < n {
		return
	}
	kept := make([]*entry, 0, b.live+b.live/2)
	for _, e := range b.all[b.head:] {
		if e.refs > 0 {
			kept = append(kept, e)
		}
	}
	b.all, b.head = kept, 0
}

// evictOldest removes the oldest message of the whole log from every topic
// that still holds it, and forgets the topics it leaves empty.
func (b *Broker) evictOldest() {
	e := b.all[b.head]
	b.all[b.head] = nil
	b.head++
	if b.head > 1024 && b.head*2 > len(b.all) {
		b.all = slices.Clone(b.all[b.head:])
		b.head = 0
	}
	if e.refs == 0 {
		return
	}
	topics := e.m.Topics
	for _, t := range topics {
		tl := b.topics[t]
		if tl != nil && len(tl.log) > 0 && tl.log[0] == e {
			b.dropFront(tl)
			if tl.empty() {
				b.forget(t, tl)
			} else {
				b.fix(tl)
			}
		}
	}
}

// empty reports whether the topic holds nothing: no history, no retained or
// final message.
func (tl *topicLog) empty() bool {
	return len(tl.log) == 0 && tl.retained == nil && tl.final == nil
}

// evictedOf returns the highest offset evicted from topic, which is not
// held (a forgotten or never seen topic).
func (b *Broker) evictedOf(topic string) uint64 {
	if hi, ok := b.tombs[topic]; ok {
		return hi
	}
	return b.forgotten
}

// forget drops topic, keeping in a tombstone the highest offset a client
// must have seen to have missed none of its messages.
func (b *Broker) forget(topic string, tl *topicLog) {
	for len(tl.log) > 0 {
		b.dropFront(tl)
	}
	b.fix(tl)
	hi := tl.evicted
	if tl.final != nil {
		hi = max(hi, tl.final.Pos.Offset)
	}
	delete(b.topics, topic)
	if hi <= b.forgotten {
		return // the watermark says as much
	}
	b.tombs[topic] = hi
	b.tombOrder = append(b.tombOrder, tomb{topic, hi})
	for len(b.tombOrder) > b.maxTombs {
		old := b.tombOrder[0]
		b.tombOrder[0] = tomb{}
		b.tombOrder = b.tombOrder[1:]
		if hi, ok := b.tombs[old.topic]; ok && hi == old.hi {
			delete(b.tombs, old.topic)
			b.forgotten = max(b.forgotten, old.hi)
		}
	}
}

func (b *Broker) sweeper(every time.Duration) {
	defer b.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-t.C:
			b.sweep()
		}
	}
}

// sweep applies age-based retention and forgets finished or empty topics.
func (b *Broker) sweep() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.retention.MaxAge <= 0 {
		return
	}
	cutoff := b.now().Add(-b.retention.MaxAge)
	for b.head < len(b.all) {
		e := b.all[b.head]
		if e.refs > 0 && !e.m.Time.Before(cutoff) {
			break
		}
		b.evictOldest()
	}
	for name, tl := range b.topics {
		finishedLongAgo := tl.final != nil && tl.final.Time.Before(cutoff)
		if finishedLongAgo || tl.empty() {
			b.forget(name, tl)
		}
	}
	b.compact()
}

// Read returns a snapshot for q.
func (b *Broker) Read(ctx context.Context, q pubsub.Query) (pubsub.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return pubsub.Snapshot{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return pubsub.Snapshot{}, pubsub.ErrClosed
	}
	snap := pubsub.Snapshot{Head: pubsub.Position{Epoch: b.epoch, Offset: b.seq}}
	for _, t := range q.Topics {
		if tl := b.topics[t]; tl != nil && tl.final != nil {
			if snap.Finals == nil {
				snap.Finals = make(map[string]pubsub.Position)
			}
			snap.Finals[t] = tl.final.Pos
		}
	}
	if q.After == nil {
		snap.Retained = b.retainedLocked(q.Topics)
		return snap, nil
	}
	after := q.After.Offset
	if q.After.Epoch != b.epoch {
		snap.EpochChanged = true
		after = 0
	}
	var lists [][]*entry
	for _, t := range q.Topics {
		tl := b.topics[t]
		if tl == nil {
			if after < b.evictedOf(t) {
				snap.Truncated = true
			}
			continue
		}
		if after < tl.evicted {
			snap.Truncated = true
		}
		i := sort.Search(len(tl.log), func(i int) bool { return tl.log[i].m.Pos.Offset > after })
		if i < len(tl.log) {
			lists = append(lists, tl.log[i:])
		}
	}
	snap.Events = merge(lists)
	if snap.Truncated || snap.EpochChanged {
		snap.Retained = b.retainedLocked(q.Topics)
	}
	return snap, nil
}

// retainedLocked returns the retained messages of topics, each once, in
// position order. b.mu is held.
func (b *Broker) retainedLocked(topics []string) []*pubsub.Message {
	var out []*pubsub.Message
	for _, t := range topics {
		if tl := b.topics[t]; tl != nil && tl.retained != nil && !slices.Contains(out, tl.retained) {
			out = append(out, tl.retained)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pos.Offset < out[j].Pos.Offset })
	return out
}

// merge merges offset-ordered lists into one, each message once.
func merge(lists [][]*entry) []*pubsub.Message {
	switch len(lists) {
	case 0:
		return nil
	case 1:
		out := make([]*pubsub.Message, len(lists[0]))
		for i, e := range lists[0] {
			out[i] = e.m
		}
		return out
	}
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	out := make([]*pubsub.Message, 0, n)
	for {
		best := -1
		for i, l := range lists {
			if len(l) > 0 && (best < 0 || l[0].m.Pos.Offset < lists[best][0].m.Pos.Offset) {
				best = i
			}
		}
		if best < 0 {
			return out
		}
		m := lists[best][0].m
		if len(out) == 0 || out[len(out)-1] != m {
			out = append(out, m)
		}
		lists[best] = lists[best][1:]
	}
}

// Listen hands every message published from now on to h until ctx ends or
// the broker is closed. It calls h.HandleStart (if h has it) with the head
// when it registers h. Several Listen calls may run at once (several hubs
// in one process sharing the broker): each gets every message.
func (b *Broker) Listen(ctx context.Context, h pubsub.Handler) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return pubsub.ErrClosed
	}
	l := &listening{h: h}
	b.handlers = append(b.handlers, l)
	if sh, ok := h.(pubsub.StartHandler); ok {
		sh.HandleStart(pubsub.Position{Epoch: b.epoch, Offset: b.seq})
	}
	b.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-b.done:
	}
	b.mu.Lock()
	b.handlers = slices.DeleteFunc(b.handlers, func(x *listening) bool { return x == l })
	b.mu.Unlock()
	return nil
}

// listening is one running Listen call.
type listening struct{ h pubsub.Handler }

// Purge removes topic's history and retained and final state, and forgets
// the topic. Subscribers resuming from before the purge are told that
// history was truncated.
func (b *Broker) Purge(ctx context.Context, topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	tl := b.topics[topic]
	if tl == nil {
		return nil
	}
	tl.evicted = b.seq
	tl.retained, tl.final = nil, nil
	b.forget(topic, tl)
	b.compact()
	return nil
}

// Stats describes the broker's history.
type Stats struct {
	Topics   int
	Messages int
	Bytes    int64
}

// Stats returns the current size of the history.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{Topics: len(b.topics), Messages: b.live, Bytes: b.bytes}
}

// Close stops the broker; Listen returns and later calls fail with
// pubsub.ErrClosed.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.done)
	b.mu.Unlock()
	b.wg.Wait()
	return nil
}
