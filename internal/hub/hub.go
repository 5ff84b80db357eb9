package hub

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/shard"
)

// Errors returned by Subscribe and reported by Subscription.Err.
var (
	// ErrFinished: every topic of the subscription is finished and the
	// client has its final events (HTTP: 204 No Content).
	ErrFinished = errors.New("hub: topics finished")
	// ErrSlowConsumer: the subscriber's queue overflowed; it was cut off
	// and resumes from history when it reconnects.
	ErrSlowConsumer = errors.New("hub: slow consumer")
	// ErrClosed: the hub is shutting down.
	ErrClosed = errors.New("hub: closed")
	// ErrEpochChanged: the broker's log was lost or recreated while the
	// subscription was open.
	ErrEpochChanged = errors.New("hub: epoch changed")
	// ErrKicked: an administrator ended the subscription.
	ErrKicked = errors.New("hub: disconnected by an administrator")
	// ErrInvalidTopic: a topic name is not acceptable.
	ErrInvalidTopic = errors.New("invalid topic")
	// ErrInvalidMessage: a message cannot be published as it is (its event
	// type would break the wire format).
	ErrInvalidMessage = errors.New("invalid message")
)

// MaxTopicLen is the longest topic name accepted, in bytes.
const MaxTopicLen = 256

// ValidateTopic reports whether s is an acceptable topic name: 1 to
// MaxTopicLen bytes of valid UTF-8 without control characters.
func ValidateTopic(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopic)
	case len(s) > MaxTopicLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidTopic, MaxTopicLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidTopic)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("%w: contains control character %U", ErrInvalidTopic, r)
		}
	}
	return nil
}

// Options configure a Hub. The zero value is valid.
type Options struct {
	// QueueBytes caps each subscriber's queue of undelivered events.
	// Default 4 MiB.
	QueueBytes int
	// Linger is how long the hub keeps listening to a log (a shard) after
	// its last local subscription ended, so that a client reconnecting at
	// once does not make the hub start again. Default 2s; negative stops
	// at once.
	Linger time.Duration
	// Logger receives the hub's logs. Default slog.Default().
	Logger *slog.Logger
}

const numStripes = 64

// Hub fans out a broker's messages to local subscriptions. Create one with
// New, start it with Run. All methods are safe for concurrent use.
type Hub struct {
	broker     pubsub.Broker
	sharded    pubsub.Sharded // nil: the broker is one log
	logs       []*logState    // the broker's logs: its shards, or itself
	queueBytes int
	linger     time.Duration
	log        *slog.Logger
	seed       maphash.Seed
	stripes    [numStripes]stripe

	running chan struct{}   // closed by Run once runCtx is set
	runCtx  context.Context // Run's context: listeners live within it
	runOnce sync.Once
	done    chan struct{} // closed by Close

	mu     sync.Mutex // guards closed and all
	closed bool
	all    map[*Subscription]struct{}

	stats counters
}

// stripe is one lock stripe of the topic index.
type stripe struct {
	mu     sync.RWMutex
	topics map[string]*topicSubs
}

type topicSubs struct {
	internal  int // internal subscriptions among subs
	subs      []*Subscription
	idx       map[*Subscription]int
	delivered atomic.Uint64 // messages of this topic fanned out here
}

// New returns a Hub over b. When b is pubsub.Sharded, the hub reads,
// listens and resumes per shard.
func New(b pubsub.Broker, opts *Options) *Hub {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 4 << 20
	}
	if o.Linger == 0 {
		o.Linger = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &Hub{broker: b, queueBytes: o.QueueBytes, linger: o.Linger, log: o.Logger, seed: maphash.MakeSeed(),
		all: make(map[*Subscription]struct{}), running: make(chan struct{}), done: make(chan struct{})}
	logs := []pubsub.Broker{b}
	if sb, ok := b.(pubsub.Sharded); ok {
		h.sharded = sb
		logs = sb.Shards()
	}
	for k, lb := range logs {
		h.logs = append(h.logs, &logState{h: h, k: k, broker: lb})
	}
	for i := range h.stripes {
		h.stripes[i].topics = make(map[string]*topicSubs)
	}
	return h
}

// Broker returns the hub's broker.
func (h *Hub) Broker() pubsub.Broker { return h.broker }

// Shards returns the number of logs the hub reads (1 unless the broker
// is sharded).
func (h *Hub) Shards() int { return len(h.logs) }

// ShardOf returns the log (shard) of topic.
func (h *Hub) ShardOf(topic string) int {
	if h.sharded == nil {
		return 0
	}
	return h.sharded.ShardOf(topic)
}

// ShardStat describes the hub's reading of one log (shard).
type ShardStat struct {
	Shard     int
	Listening bool   // the hub listens to it now
	Received  uint64 // messages received from it
}

// ShardStats describes the hub's reading of each of its logs.
func (h *Hub) ShardStats() []ShardStat {
	out := make([]ShardStat, len(h.logs))
	for k, ls := range h.logs {
		out[k] = ShardStat{Shard: k, Listening: ls.listening(), Received: ls.count.Load()}
	}
	return out
}

// Listening reports, for each log, whether the hub listens to it now
// (only while a local subscription needs it).
func (h *Hub) Listening() []bool {
	out := make([]bool, len(h.logs))
	for k, ls := range h.logs {
		out[k] = ls.listening()
	}
	return out
}

// Run lets subscriptions receive live events until ctx ends: while it
// runs, the hub listens to each log that a local subscription needs
// (Subscribe waits until Run has started). It returns nil when ctx ends,
// once every listener has stopped.
func (h *Hub) Run(ctx context.Context) error {
	first := false
	h.runOnce.Do(func() {
		h.runCtx = ctx
		close(h.running)
		first = true
	})
	if !first {
		return errors.New("hub: Run called twice")
	}
	<-ctx.Done()
	for _, ls := range h.logs {
		ls.halt()
	}
	return nil
}

// waitRunning returns once Run has started, or with an error when ctx
// ends or the hub closes first.
func (h *Hub) waitRunning(ctx context.Context) error {
	select {
	case <-h.running:
		return nil
	default:
	}
	select {
	case <-h.running:
		return nil
	case <-h.done:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("hub: waiting for the broker to listen: %w", ctx.Err())
	}
}

// Publish publishes m through the broker. It refuses, with ErrInvalidTopic
// or ErrInvalidMessage, a message that could not be delivered: one without
// a topic, with an invalid topic, or with an event type containing a line
// break. Duplicate topics are dropped.
func (h *Hub) Publish(ctx context.Context, m *pubsub.Message) (pubsub.Position, error) {
	if err := checkMessage(m); err != nil {
		return pubsub.Position{}, err
	}
	pos, err := h.broker.Publish(ctx, m)
	if err == nil {
		h.stats.published.Add(1)
	}
	return pos, err
}

func (h *Hub) stripe(topic string) *stripe {
	return &h.stripes[maphash.String(h.seed, topic)%numStripes]
}

// fanOut hands m, a message of log k, to the local subscribers of its
// topics.
//
// The subscriptions are signalled (Ready, and their Notify callbacks run)
// once every stripe lock is released: a transport's callback takes its own
// locks, which must never nest inside the hub's (see the lock order in
// doc.go).
func (h *Hub) fanOut(k int, m *pubsub.Message) {
	var ev *Event
	woken := wokenPool.Get().(*[]*Subscription)
	for _, t := range m.Topics {
		sh := h.stripe(t)
		sh.mu.RLock()
		if ts := sh.topics[t]; ts != nil {
			if ev == nil {
				ev = NewMessageEvent(m)
			}
			ts.delivered.Add(1)
			for _, s := range ts.subs {
				if s.offer(ev, k) {
					*woken = append(*woken, s)
				}
			}
		}
		sh.mu.RUnlock()
	}
	for i, s := range *woken {
		s.signal()
		(*woken)[i] = nil
	}
	*woken = (*woken)[:0]
	wokenPool.Put(woken)
}

// wokenPool holds fanOut's lists of subscriptions to signal.
var wokenPool = sync.Pool{New: func() any { return new([]*Subscription) }}

// logOf returns the log whose current epoch is epoch, or -1.
func (h *Hub) logOf(epoch string) int {
	for k, ls := range h.logs {
		if ls.broker.Epoch() == epoch {
			return k
		}
	}
	return -1
}

// HandleMessage fans m out to the local subscribers of its topics, as if
// the listener of its log (the one whose epoch it carries) received it.
// It implements pubsub.Handler, for tests and tools; the hub listens to
// its logs itself.
func (h *Hub) HandleMessage(m *pubsub.Message) {
	k := max(h.logOf(m.Pos.Epoch), 0)
	h.fanOut(k, m)
	h.logs[k].receivedUpTo(m.Pos.Offset)
}

// HandleEpoch ends every subscription, as if every log changed epoch. It
// implements pubsub.Handler, for tests and tools.
func (h *Hub) HandleEpoch(epoch string) {
	for k := range h.logs {
		h.epochChanged(k, epoch)
	}
}

// epochChanged ends the subscriptions that read log k: their positions
// there mean nothing in the new epoch, and on reconnecting each client is
// told so.
func (h *Hub) epochChanged(k int, epoch string) {
	h.log.Warn("broker epoch changed: history was lost or recreated; ending the streams that read it", "shard", k, "epoch", epoch)
	ls := h.logs[k]
	ls.receivedUpTo(^uint64(0)) // positions waited for are gone
	ls.received.Store(0)
	h.endLog(k, ErrEpochChanged)
}

// endLog ends the subscriptions that read log k with err.
func (h *Hub) endLog(k int, err error) {
	for _, s := range h.subscriptions() {
		if s.reads(k) {
			s.end(err)
		}
	}
}

func (h *Hub) subscriptions() []*Subscription {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Subscription, 0, len(h.all))
	for s := range h.all {
		out = append(out, s)
	}
	return out
}

// Sync returns once the hub has fanned out the message at pos to its
// subscriptions (at once with a broker that delivers before Publish
// returns; after the broker's listener got it otherwise), or at once when
// the hub does not listen to pos's log (no local subscription reads it),
// or pos is of no current epoch; or when the epoch changes, or ctx ends
// (then with its error). A feature that publishes final events while
// shutting down calls it before the hub closes its streams, so that they
// end with those events.
func (h *Hub) Sync(ctx context.Context, pos pubsub.Position) error {
	k := h.logOf(pos.Epoch)
	if k < 0 {
		return nil
	}
	return h.logs[k].sync(ctx, pos)
}

// Close ends every subscription (they drain what is queued, then end) and
// makes later Subscribe calls fail with ErrClosed.
func (h *Hub) Close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
	h.mu.Unlock()
	for _, s := range h.subscriptions() {
		s.end(ErrClosed)
	}
}

// Disconnect ends the subscriptions that follow topic (all of them when
// topic is empty) and returns how many it ended.
func (h *Hub) Disconnect(topic string) int {
	n := 0
	for _, s := range h.subscriptions() {
		if !s.internal && (topic == "" || s.follows(topic)) {
			s.end(ErrKicked)
			n++
		}
	}
	return n
}

// TopicStat describes a topic with local subscribers.
type TopicStat struct {
	Topic       string
	Subscribers int
	// Messages fanned out to this topic's local subscribers since it last
	// gained a first subscriber.
	Messages uint64
}

// TopicStats returns the topics that have local subscribers.
func (h *Hub) TopicStats() []TopicStat {
	var out []TopicStat
	for i := range h.stripes {
		sh := &h.stripes[i]
		sh.mu.RLock()
		for t, ts := range sh.topics {
			if n := len(ts.subs) - ts.internal; n > 0 {
				out = append(out, TopicStat{Topic: t, Subscribers: n, Messages: ts.delivered.Load()})
			}
		}
		sh.mu.RUnlock()
	}
	return out
}

// TopicCounts returns the number of local subscribers of each topic.
func (h *Hub) TopicCounts() map[string]int {
	out := make(map[string]int)
	for i := range h.stripes {
		sh := &h.stripes[i]
		sh.mu.RLock()
		for t, ts := range sh.topics {
			if n := len(ts.subs) - ts.internal; n > 0 {
				out[t] = n
			}
		}
		sh.mu.RUnlock()
	}
	return out
}

func (h *Hub) register(s *Subscription) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrClosed
	}
	h.all[s] = struct{}{}
	h.mu.Unlock()
	for _, t := range s.topics {
		sh := h.stripe(t)
		sh.mu.Lock()
		ts := sh.topics[t]
		if ts == nil {
			ts = &topicSubs{idx: make(map[*Subscription]int)}
			sh.topics[t] = ts
		}
		ts.idx[s] = len(ts.subs)
		ts.subs = append(ts.subs, s)
		if s.internal {
			ts.internal++
		}
		sh.mu.Unlock()
	}
	if !s.internal {
		h.stats.subscriptions.Add(1)
	}
	return nil
}

func (h *Hub) unregister(s *Subscription) {
	h.mu.Lock()
	_, ok := h.all[s]
	delete(h.all, s)
	h.mu.Unlock()
	if !ok {
		return
	}
	for _, t := range s.topics {
		sh := h.stripe(t)
		sh.mu.Lock()
		if ts := sh.topics[t]; ts != nil {
			if i, ok := ts.idx[s]; ok {
				last := len(ts.subs) - 1
				ts.subs[i] = ts.subs[last]
				ts.idx[ts.subs[i]] = i
				ts.subs[last] = nil
				ts.subs = ts.subs[:last]
				delete(ts.idx, s)
				if s.internal {
					ts.internal--
				}
			}
			if len(ts.subs) == 0 {
				delete(sh.topics, t)
			}
		}
		sh.mu.Unlock()
	}
	if !s.internal {
		h.stats.subscriptions.Add(-1)
	}
}

// Stats is a snapshot of the hub's counters.
type Stats struct {
	Subscriptions   int64            // open now
	Published       uint64           // messages published through this hub
	Delivered       uint64           // events handed to transports
	Replayed        uint64           // events sent from history to resuming clients
	Dropped         uint64           // events lost to slow consumers (they resume)
	SlowDisconnects uint64           // subscribers cut off for falling behind
	Resets          map[string]int64 // herald.reset events sent, by reason
}

type counters struct {
	subscriptions  atomic.Int64
	published      atomic.Uint64
	delivered      atomic.Uint64
	replayed       atomic.Uint64
	dropped        atomic.Uint64
	slow           atomic.Uint64
	resetTruncated atomic.Int64
	resetEpoch     atomic.Int64
	resetInvalidID atomic.Int64
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	c := &h.stats
	return Stats{
		Subscriptions:   c.subscriptions.Load(),
		Published:       c.published.Load(),
		Delivered:       c.delivered.Load(),
		Replayed:        c.replayed.Load(),
		Dropped:         c.dropped.Load(),
		SlowDisconnects: c.slow.Load(),
		Resets: map[string]int64{
			ReasonTruncated:    c.resetTruncated.Load(),
			ReasonEpochChanged: c.resetEpoch.Load(),
			ReasonInvalidID:    c.resetInvalidID.Load(),
		},
	}
}

func (c *counters) reset(reason string) {
	switch reason {
	case ReasonTruncated:
		c.resetTruncated.Add(1)
	case ReasonEpochChanged:
		c.resetEpoch.Add(1)
	case ReasonInvalidID:
		c.resetInvalidID.Add(1)
	}
}

// Earliest returns the event id that stands before the first event of
// every log of topics: resuming from it replays all the history they have.
func (h *Hub) Earliest(topics []string) string {
	var entries []shard.Entry
	for _, t := range topics {
		k := h.ShardOf(t)
		if !slices.ContainsFunc(entries, func(e shard.Entry) bool { return e.Shard == k }) {
			entries = append(entries, shard.Entry{Shard: k, Pos: pubsub.Position{Epoch: h.logs[k].broker.Epoch()}})
		}
	}
	if len(entries) == 0 {
		return pubsub.Position{Epoch: h.logs[0].broker.Epoch()}.String()
	}
	slices.SortFunc(entries, func(a, b shard.Entry) int { return a.Shard - b.Shard })
	return shard.FormatID(entries)
}

// KnownID reports whether id is an event id of the hub's logs in their
// current epochs (a position, or a vector of positions).
func (h *Hub) KnownID(id string) bool {
	epochs := make([]string, len(h.logs))
	for k, ls := range h.logs {
		epochs[k] = ls.broker.Epoch()
	}
	entries, err := shard.ParseID(id, epochs)
	if err != nil || len(entries) == 0 {
		return false
	}
	for _, e := range entries {
		if e.Shard < 0 || e.Pos.Epoch == "" {
			return false
		}
	}
	return true
}
