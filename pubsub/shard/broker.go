package shard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/heraldpush/herald/pubsub"
)

// Broker is a pubsub.Sharded over several brokers, one per shard. Create
// one with New. All methods are safe for concurrent use; nothing is shared
// between shards on the publish path.
type Broker struct {
	shards []pubsub.Broker
	marks  []marks // per shard: the shard counts it was part of
}

var (
	_ pubsub.Sharded        = (*Broker)(nil)
	_ pubsub.BatchPublisher = (*Broker)(nil)
	_ pubsub.Purger         = (*Broker)(nil)
	_ pubsub.Inspector      = (*Broker)(nil)
)

// ErrSpansShards is returned by Read for a query whose topics are on
// several shards: read each shard (pubsub.LogOf) instead.
var ErrSpansShards = errors.New("shard: the query's topics are on several shards")

// Options configure New and Check. Nil means the zero value.
type Options struct {
	// Reshard allows the number of shards to differ from the one the
	// shards recorded (a deployment that had one log counts as one
	// shard): the new count is recorded, and topics that move get a new
	// epoch (see Moved). Every node must then run with the new count.
	// Default false: New refuses another count with ErrShardCount.
	Reshard bool
}

// ErrShardCount is returned (wrapped) by New and Check when the shards
// record another number of shards than the node was given, and
// Options.Reshard is not set: nodes with different counts would put a
// topic on different shards.
var ErrShardCount = errors.New("shard: the deployment runs with another number of shards")

// New returns a Broker over shards (shard k at index k), which it owns
// and closes. It records the number of shards in each (see Moved), and
// refuses shards that share an epoch (two shards on one log: a
// misconfiguration) and, unless opts.Reshard is set, a number of shards
// other than the one recorded (ErrShardCount).
func New(ctx context.Context, shards []pubsub.Broker, opts *Options) (*Broker, error) {
	if len(shards) == 0 {
		return nil, errors.New("shard: no shard")
	}
	seen := make(map[string]int)
	for k, s := range shards {
		if j, ok := seen[s.Epoch()]; ok {
			return nil, fmt.Errorf("shard: shards %d and %d are one log (epoch %s): give each its own storage", j, k, s.Epoch())
		}
		seen[s.Epoch()] = k
	}
	b := &Broker{shards: shards}
	var o Options
	if opts != nil {
		o = *opts
	}
	ms, err := record(ctx, shards, o.Reshard)
	if err != nil {
		return nil, err
	}
	b.marks = ms
	return b, nil
}

// Shards returns the shards.
func (b *Broker) Shards() []pubsub.Broker { return b.shards }

// ShardOf returns topic's shard.
func (b *Broker) ShardOf(topic string) int { return Of(topic, len(b.shards)) }

// Epoch returns shard 0's epoch.
func (b *Broker) Epoch() string { return b.shards[0].Epoch() }

// split groups m's topics by shard, in ascending shard order.
func (b *Broker) split(topics []string) (shards []int, groups [][]string) {
	for _, t := range topics {
		k := b.ShardOf(t)
		i, found := slices.BinarySearch(shards, k)
		if !found {
			shards = slices.Insert(shards, i, k)
			groups = slices.Insert(groups, i, nil)
		}
		if !slices.Contains(groups[i], t) {
			groups[i] = append(groups[i], t)
		}
	}
	return shards, groups
}

// copies returns m as one message per shard, in ascending shard order.
func (b *Broker) copies(m *pubsub.Message) ([]int, []*pubsub.Message) {
	shards, groups := b.split(m.Topics)
	if len(shards) == 1 {
		return shards, []*pubsub.Message{m}
	}
	out := make([]*pubsub.Message, len(shards))
	for i, g := range groups {
		c := *m
		c.Topics = g
		c.Also = nil
		for j, other := range groups {
			if j != i {
				c.Also = append(c.Also, other...)
			}
		}
		out[i] = &c
	}
	return shards, out
}

// Publish stores m on its topics' shards. When they are several it stores
// one message per shard, in ascending shard order, after checking that
// none of the topics is finished, and sets m.Pos and m.Time to those of
// the copy on the shard of m's first topic. It fails (with the failing
// shard's error) as soon as one shard fails: publishing m again with the
// same ID completes it (set one: see pubsub.Message.ID).
func (b *Broker) Publish(ctx context.Context, m *pubsub.Message) (pubsub.Position, error) {
	if len(m.Topics) == 0 {
		return pubsub.Position{}, errors.New("shard: publish: no topic")
	}
	shards, cs := b.copies(m)
	if len(cs) == 1 {
		return b.shards[shards[0]].Publish(ctx, m)
	}
	if err := b.checkOpen(ctx, shards, cs); err != nil {
		return pubsub.Position{}, err
	}
	first := b.ShardOf(m.Topics[0])
	for i, c := range cs {
		pos, err := b.shards[shards[i]].Publish(ctx, c)
		if err != nil {
			return pubsub.Position{}, fmt.Errorf("shard %d: %w", shards[i], err)
		}
		if shards[i] == first {
			m.Pos, m.Time = pos, c.Time
		}
	}
	return m.Pos, nil
}

// checkOpen refuses, before anything is stored, a split message one of
// whose topics is finished.
func (b *Broker) checkOpen(ctx context.Context, shards []int, cs []*pubsub.Message) error {
	for i, c := range cs {
		snap, err := b.shards[shards[i]].Read(ctx, pubsub.Query{Topics: c.Topics})
		if err != nil {
			return fmt.Errorf("shard %d: %w", shards[i], err)
		}
		for _, t := range c.Topics {
			if _, ok := snap.Finals[t]; ok {
				return fmt.Errorf("%w: %q", pubsub.ErrTopicFinished, t)
			}
		}
	}
	return nil
}

// PublishBatch publishes msgs, each shard's messages in one batch of its
// own, the shards concurrently. It returns how many messages, in order,
// were published on every shard they go to, with the first error; a
// message after that one may have been stored on some shards (publish it
// again with the same ID to complete it).
func (b *Broker) PublishBatch(ctx context.Context, msgs []*pubsub.Message) (int, error) {
	type part struct {
		msgs []*pubsub.Message
		idx  []int // index in msgs of each
	}
	parts := make(map[int]*part)
	firstCopy := make([]*pubsub.Message, len(msgs)) // the copy on the first topic's shard
	for i, m := range msgs {
		if len(m.Topics) == 0 {
			return 0, errors.New("shard: publish: no topic")
		}
		shards, cs := b.copies(m)
		if len(cs) > 1 {
			if err := b.checkOpen(ctx, shards, cs); err != nil {
				return 0, err
			}
		}
		first := b.ShardOf(m.Topics[0])
		for j, k := range shards {
			p := parts[k]
			if p == nil {
				p = &part{}
				parts[k] = p
			}
			p.msgs = append(p.msgs, cs[j])
			p.idx = append(p.idx, i)
			if k == first {
				firstCopy[i] = cs[j]
			}
		}
	}
	failedAt := len(msgs)
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for k, p := range parts {
		wg.Go(func() {
			n, err := publishAll(ctx, b.shards[k], p.msgs)
			if err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if at := p.idx[n]; at < failedAt {
				failedAt, firstErr = at, fmt.Errorf("shard %d: %w", k, err)
			}
		})
	}
	wg.Wait()
	for i, m := range msgs[:failedAt] {
		if c := firstCopy[i]; c != m {
			m.Pos, m.Time = c.Pos, c.Time // a split message
		}
	}
	return failedAt, firstErr
}

// publishAll publishes msgs on one broker, in one batch if it can.
func publishAll(ctx context.Context, b pubsub.Broker, msgs []*pubsub.Message) (int, error) {
	if bp, ok := b.(pubsub.BatchPublisher); ok && len(msgs) > 1 {
		return bp.PublishBatch(ctx, msgs)
	}
	for i, m := range msgs {
		if _, err := b.Publish(ctx, m); err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

// Read returns the snapshot of q from its topics' shard; ErrSpansShards
// when they are on several.
func (b *Broker) Read(ctx context.Context, q pubsub.Query) (pubsub.Snapshot, error) {
	shards, _ := b.split(q.Topics)
	if len(shards) > 1 {
		return pubsub.Snapshot{}, ErrSpansShards
	}
	k := 0
	if len(shards) == 1 {
		k = shards[0]
	}
	return b.shards[k].Read(ctx, q)
}

// Listen delivers the live messages of every shard to h (positions are
// per shard: a message's epoch names its shard) until ctx ends. It calls
// HandleStart, if h has it, once every shard has started, with shard 0's
// head. (The hub listens to each shard on its own instead.)
func (b *Broker) Listen(ctx context.Context, h pubsub.Handler) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		started = make(chan pubsub.Position, len(b.shards))
		wg      sync.WaitGroup
		errs    = make([]error, len(b.shards))
	)
	for k, s := range b.shards {
		wg.Go(func() {
			errs[k] = s.Listen(ctx, &serial{mu: &mu, h: h, k: k, started: started})
			cancel()
		})
	}
	go func() {
		var head pubsub.Position
		for k := range b.shards {
			select {
			case p := <-started:
				if k == 0 || p.Epoch == b.shards[0].Epoch() {
					head = p
				}
			case <-ctx.Done():
				return
			}
		}
		if sh, ok := h.(pubsub.StartHandler); ok {
			mu.Lock()
			sh.HandleStart(head)
			mu.Unlock()
		}
	}()
	wg.Wait()
	if ctx.Err() != nil {
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// serial passes one shard's calls to a handler shared by all, one at a
// time.
type serial struct {
	mu      *sync.Mutex
	h       pubsub.Handler
	k       int
	started chan<- pubsub.Position
}

func (s *serial) HandleMessage(m *pubsub.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.HandleMessage(m)
}

func (s *serial) HandleEpoch(epoch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.HandleEpoch(epoch)
}

func (s *serial) HandleStart(head pubsub.Position) { s.started <- head }

// Purge purges topic on its shard.
func (b *Broker) Purge(ctx context.Context, topic string) error {
	p, ok := b.shards[b.ShardOf(topic)].(pubsub.Purger)
	if !ok {
		return errors.New("shard: the broker cannot purge")
	}
	return p.Purge(ctx, topic)
}

// Topics lists the topics of every shard that can list them, sorted.
func (b *Broker) Topics(ctx context.Context) ([]pubsub.TopicInfo, error) {
	var out []pubsub.TopicInfo
	for _, s := range b.shards {
		in, ok := s.(pubsub.Inspector)
		if !ok {
			continue
		}
		ts, err := in.Topics(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range ts {
			if !strings.HasPrefix(t.Topic, markTopic) {
				out = append(out, t)
			}
		}
	}
	slices.SortFunc(out, func(a, b pubsub.TopicInfo) int { return strings.Compare(a.Topic, b.Topic) })
	return out, nil
}

// Close closes every shard.
func (b *Broker) Close() error {
	var errs []error
	for _, s := range b.shards {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
