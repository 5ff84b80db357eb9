package redis

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/internal/codec"
)

//go:embed lua/*.lua
var luaFiles embed.FS

// The scripts; each is common.lua followed by its own file.
var (
	initScript    = script("init.lua")
	publishScript = script("publish.lua")
	readScript    = script("read.lua")
	sweepScript   = script("sweep.lua")
	purgeScript   = script("purge.lua")
	readTopicScr  = script("read_topic.lua")
)

func script(name string) *goredis.Script {
	common, err := luaFiles.ReadFile("lua/common.lua")
	if err != nil {
		panic(err)
	}
	src, err := luaFiles.ReadFile("lua/" + name)
	if err != nil {
		panic(err)
	}
	return goredis.NewScript(string(common) + "\n" + string(src))
}

// Options configure a Broker. The zero value is valid.
type Options struct {
	// Prefix names the deployment's keys: every key is "{Prefix}:...", so
	// that all of them share one Redis Cluster hash slot. Every node of a
	// deployment uses the same prefix; deployments sharing a Redis use
	// different ones. It may not contain '{' or '}'. Default "herald".
	Prefix string
	// Retention bounds history. Zero fields mean no limit of that kind.
	Retention pubsub.Retention
	// SweepInterval is how often age-based retention and the byte bound
	// run. Default 1s.
	SweepInterval time.Duration
	// LiveWindow is how many bytes of recent batches the live stream,
	// which every node's listener reads, keeps: a listener that falls
	// further behind (cut off from Redis, or stalled) resynchronises its
	// subscribers from history. Default 64 MiB.
	LiveWindow int64
	// Logger receives the broker's logs. Default slog.Default().
	Logger *slog.Logger
}

// Broker is a pubsub.Broker on Redis. Create one with New or Open. All
// methods are safe for concurrent use.
type Broker struct {
	rdb       goredis.UniversalClient
	ownClient bool
	o         Options
	base      string // "{prefix}"
	meta      string
	epochs    string

	epoch atomic.Pointer[string]

	// listenDown is set while the listener cannot read; up wakes it when
	// a call of this node succeeds meanwhile (Redis is back).
	listenDown atomic.Bool
	up         chan struct{}

	life      context.Context // ends when the broker is closed
	stop      context.CancelFunc
	closed    atomic.Bool
	closeOnce sync.Once
	wg        sync.WaitGroup
}

var (
	_ pubsub.Broker         = (*Broker)(nil)
	_ pubsub.BatchPublisher = (*Broker)(nil)
	_ pubsub.Purger         = (*Broker)(nil)
	_ pubsub.Inspector      = (*Broker)(nil)
)

// DefaultPrefix is the key prefix used when Options.Prefix is empty.
const DefaultPrefix = "herald"

// DefaultLiveWindow is Options.LiveWindow's default.
const DefaultLiveWindow = 64 << 20

// New returns a Broker that keeps its log in Redis through rdb, which the
// caller keeps and closes after the Broker. It creates the log's epoch if
// the log does not exist. It fails (wrapping pubsub.ErrUnavailable) when
// Redis cannot be reached.
func New(ctx context.Context, rdb goredis.UniversalClient, opts *Options) (*Broker, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return nil, fmt.Errorf("redis: prefix %q contains '{' or '}'", o.Prefix)
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Second
	}
	if o.LiveWindow <= 0 {
		o.LiveWindow = DefaultLiveWindow
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	base := "{" + o.Prefix + "}"
	b := &Broker{rdb: rdb, o: o, base: base, meta: base + ":v2:meta", epochs: base + ":v2:epochs", up: make(chan struct{}, 1)}
	st, err := b.start(ctx)
	if err != nil {
		return nil, err
	}
	b.setEpoch(st.epoch)
	b.life, b.stop = context.WithCancel(context.Background())
	if o.Retention.MaxAge > 0 || o.Retention.MaxBytes > 0 {
		b.wg.Add(1)
		go b.sweeper()
	}
	b.checkEvictionPolicy(ctx)
	b.checkLayout1(ctx)
	return b, nil
}

// checkLayout1 warns when the prefix also holds a log of layout 1 (written
// by Herald before the per-topic lists): it is not read, and takes memory
// until deleted.
func (b *Broker) checkLayout1(ctx context.Context) {
	n, err := b.rdb.Exists(ctx, b.base+":meta").Result()
	if err != nil || n == 0 {
		return
	}
	b.o.Logger.Warn("redis: this prefix holds the log of an earlier Herald (Redis layout 1); it is not read (clients resuming from it get herald.reset) and its keys can be deleted once no such node runs: see docs/deploy.md, \"Upgrading from a Herald whose Redis layout was 1\"",
		"prefix", b.o.Prefix, "meta", b.base+":meta")
}

// Open connects to the Redis that rawURL names (see NewClient) and returns
// a Broker that closes the connection when it is closed.
func Open(ctx context.Context, rawURL string, opts *Options) (*Broker, error) {
	rdb, err := NewClient(rawURL)
	if err != nil {
		return nil, err
	}
	b, err := New(ctx, rdb, opts)
	if err != nil {
		_ = rdb.Close()
		return nil, err
	}
	b.ownClient = true
	return b, nil
}

// checkEvictionPolicy warns when Redis may evict keys under memory
// pressure: an evicted key is silent data loss.
func (b *Broker) checkEvictionPolicy(ctx context.Context) {
	res, err := b.rdb.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return // CONFIG is often disabled on managed Redis.
	}
	if p := res["maxmemory-policy"]; p != "" && p != "noeviction" {
		b.o.Logger.Warn("redis maxmemory-policy is not noeviction: Redis may evict Herald's keys, which loses history without notice; set maxmemory-policy noeviction", "policy", p)
	}
}

// Epoch returns the log's epoch as this node last saw it.
func (b *Broker) Epoch() string { return *b.epoch.Load() }

func (b *Broker) setEpoch(e string) { b.epoch.Store(&e) }

// refreshEpoch reads the log's epoch from Redis into the node's, for a
// position of another epoch than the node last saw: the node may be the
// one behind (its listener has not noticed the change yet).
func (b *Broker) refreshEpoch(ctx context.Context) error {
	e, err := b.rdb.HGet(ctx, b.meta, "epoch").Result()
	switch {
	case errors.Is(err, goredis.Nil):
		return nil
	case err != nil:
		return b.fail(ctx, "epoch", err)
	}
	b.setEpoch(e)
	return nil
}

// epochKeys are the keys of one epoch's log (see lua/common.lua).
type epochKeys struct {
	live, wm, topics, ret, fin, sizes, fair, pend, topicPrefix, ids string
}

func (b *Broker) keys(epoch string) epochKeys {
	p := b.base + ":" + epoch + ":"
	return epochKeys{live: p + "live", wm: p + "wm", topics: p + "topics", ret: p + "ret", fin: p + "fin",
		sizes: p + "sizes", fair: p + "fair", pend: p + "pend", topicPrefix: p + "t:", ids: p + "id:"}
}

type startState struct {
	epoch     string
	head      uint64
	lastEpoch string // stream id of the newest epoch announcement
	live      uint64 // bytes written to the live stream: its newest entry's id
}

// start runs init.lua: the epoch (created if missing), the head and where
// the epoch announcements stand.
func (b *Broker) start(ctx context.Context) (startState, error) {
	res, err := initScript.Run(ctx, b.rdb, []string{b.meta, b.epochs}, pubsub.NewEpoch()).Slice()
	if err != nil {
		return startState{}, b.fail(ctx, "init", err)
	}
	if len(res) != 4 {
		return startState{}, fmt.Errorf("redis: init: unexpected reply %v", res)
	}
	st := startState{epoch: str(res[0]), head: toUint(res[1]), lastEpoch: str(res[2]), live: toUint(res[3])}
	if !pubsub.ValidEpoch(st.epoch) {
		return startState{}, fmt.Errorf("redis: init: invalid epoch %q in %s", st.epoch, b.meta)
	}
	return st, nil
}

// fail maps an error of a Redis call to the broker's errors.
func (b *Broker) fail(ctx context.Context, op string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("redis: %s: %w", op, ctx.Err())
	case b.closed.Load() || errors.Is(err, goredis.ErrClosed):
		return pubsub.ErrClosed
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) && !transient(rerr.Error()) {
		// A reply of Redis itself: the request was wrong, not the network.
		return fmt.Errorf("redis: %s: %w", op, err)
	}
	return fmt.Errorf("%w: redis: %s: %v", pubsub.ErrUnavailable, op, err)
}

// transient reports whether a Redis error reply means "not now" rather
// than "wrong request".
func transient(msg string) bool {
	for _, p := range []string{"OOM", "READONLY", "LOADING", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS", "MOVED", "ASK"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// reachable wakes the listener if it is waiting to retry: Redis answered.
func (b *Broker) reachable() {
	if b.listenDown.Load() {
		select {
		case b.up <- struct{}{}:
		default:
		}
	}
}

func (b *Broker) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.closed.Load() {
		return pubsub.ErrClosed
	}
	return nil
}

// maxEpochRetries bounds how often an operation follows an epoch change.
const maxEpochRetries = 3

// Publish appends m to the log. It returns once Redis has executed the
// write (see the package documentation for what that means for
// durability). It is a batch of one (see PublishBatch).
func (b *Broker) Publish(ctx context.Context, m *pubsub.Message) (pubsub.Position, error) {
	if _, err := b.PublishBatch(ctx, []*pubsub.Message{m}); err != nil {
		return pubsub.Position{}, err
	}
	return m.Pos, nil
}

// Read returns a snapshot for q, taken atomically by one script.
func (b *Broker) Read(ctx context.Context, q pubsub.Query) (pubsub.Snapshot, error) {
	if err := b.check(ctx); err != nil {
		return pubsub.Snapshot{}, err
	}
	topics := dedupe(q.Topics)
	for range maxEpochRetries {
		epoch := b.Epoch()
		k := b.keys(epoch)
		mode, after, epochChanged := "new", uint64(0), false
		if q.After != nil {
			mode = "resume"
			if q.After.Epoch == epoch {
				after = q.After.Offset
			} else {
				mode, epochChanged = "reset", true
			}
		}
		keys := append(make([]string, 0, 6+len(topics)), b.meta, b.epochs, k.wm, k.topics, k.ret, k.fin)
		args := append(make([]any, 0, 5+len(topics)), epoch, pubsub.NewEpoch(), mode, after, b.o.Retention.MaxEvents)
		for _, t := range topics {
			keys = append(keys, k.topicPrefix+t)
			args = append(args, t)
		}
		res, err := readScript.Run(ctx, b.rdb, keys, args...).Slice()
		if err != nil {
			return pubsub.Snapshot{}, b.fail(ctx, "read", err)
		}
		b.reachable()
		switch str(res[0]) {
		case "epoch":
			b.setEpoch(str(res[1]))
			continue
		case "ok":
		default:
			return pubsub.Snapshot{}, fmt.Errorf("redis: read: unexpected reply %v", res)
		}
		snap := pubsub.Snapshot{
			Head:         pubsub.Position{Epoch: epoch, Offset: toUint(res[1])},
			Truncated:    toUint(res[2]) == 1,
			EpochChanged: epochChanged,
		}
		finals, _ := res[3].([]any)
		for i := 0; i+1 < len(finals); i += 2 {
			if snap.Finals == nil {
				snap.Finals = make(map[string]pubsub.Position)
			}
			snap.Finals[str(finals[i])] = pubsub.Position{Epoch: epoch, Offset: toUint(finals[i+1])}
		}
		msgs, err := decodeItems(epoch, res[4])
		if err != nil {
			return pubsub.Snapshot{}, err
		}
		if mode == "new" {
			snap.Retained = retainedSet(msgs)
			return snap, nil
		}
		if len(msgs) > 0 {
			snap.Events = msgs
		}
		if len(res) > 5 {
			ret, err := decodeItems(epoch, res[5])
			if err != nil {
				return pubsub.Snapshot{}, err
			}
			snap.Retained = retainedSet(ret)
		}
		return snap, nil
	}
	return pubsub.Snapshot{}, fmt.Errorf("%w: redis: read: the epoch keeps changing", pubsub.ErrUnavailable)
}

// Purge removes topic's history, retained and final state.
func (b *Broker) Purge(ctx context.Context, topic string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	for range maxEpochRetries {
		epoch := b.Epoch()
		k := b.keys(epoch)
		res, err := purgeScript.Run(ctx, b.rdb, []string{b.meta, k.wm, k.topics, k.ret, k.fin, k.topicPrefix + topic, k.sizes, k.fair, k.pend}, epoch, topic, k.topicPrefix).Slice()
		if err != nil {
			return b.fail(ctx, "purge", err)
		}
		b.reachable()
		if str(res[0]) != "epoch" {
			return nil
		}
		if str(res[1]) == "" {
			return nil // no log at all: nothing to purge
		}
		// The topic may have been published to in the new epoch already.
		b.setEpoch(str(res[1]))
	}
	return fmt.Errorf("%w: redis: purge: the epoch keeps changing", pubsub.ErrUnavailable)
}

// Topics describes every topic held in history. It implements
// pubsub.Inspector.
func (b *Broker) Topics(ctx context.Context) ([]pubsub.TopicInfo, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	k := b.keys(b.Epoch())
	names, err := b.rdb.ZRange(ctx, k.topics, 0, -1).Result()
	if err != nil {
		return nil, b.fail(ctx, "topics", err)
	}
	rets, err := b.rdb.HKeys(ctx, k.ret).Result()
	if err != nil {
		return nil, b.fail(ctx, "topics", err)
	}
	fins, err := b.rdb.HKeys(ctx, k.fin).Result()
	if err != nil {
		return nil, b.fail(ctx, "topics", err)
	}
	all := slices.Compact(slices.Sorted(slices.Values(append(append(names, rets...), fins...))))
	out := make([]pubsub.TopicInfo, 0, len(all))
	for _, t := range all {
		n, err := b.rdb.LLen(ctx, k.topicPrefix+t).Result()
		if err != nil {
			return nil, b.fail(ctx, "topics", err)
		}
		if limit := int64(b.o.Retention.MaxEvents); limit > 0 && n > limit {
			n = limit // the oldest extra items count as evicted
		}
		out = append(out, pubsub.TopicInfo{Topic: t, Messages: int(n), Retained: slices.Contains(rets, t), Finished: slices.Contains(fins, t)})
	}
	return out, nil
}

// sweeper folds the topics' pending size changes in, applies age-based
// retention and the byte bound, and forgets topics whose messages all left
// history. Every node runs one; the work is idempotent.
func (b *Broker) sweeper() {
	defer b.wg.Done()
	t := time.NewTicker(b.o.SweepInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-b.life.Done():
			return
		case <-t.C:
		}
		err := b.sweep(b.life)
		switch {
		case err != nil && !failing && b.life.Err() == nil:
			b.o.Logger.Warn("redis: retention sweep failed", "err", err)
			failing = true
		case err == nil && failing:
			b.o.Logger.Info("redis: retention sweep works again")
			failing = false
		}
	}
}

// sweep runs sweep.lua until it has nothing more to do (bounded).
func (b *Broker) sweep(ctx context.Context) error {
	epoch := b.Epoch()
	k := b.keys(epoch)
	keys := []string{b.meta, k.wm, k.topics, k.ret, k.fin, k.sizes, k.fair, k.pend}
	r := b.o.Retention
	for range 100 {
		more, err := sweepScript.Run(ctx, b.rdb, keys, epoch, r.MaxAge.Milliseconds(), r.MaxBytes, 500, k.topicPrefix).Int()
		if err != nil {
			return b.fail(ctx, "sweep", err)
		}
		if more != 1 {
			return nil
		}
	}
	return nil
}

// Close stops the broker: Listen returns, later calls fail with
// pubsub.ErrClosed. It closes the Redis client if the broker opened it.
func (b *Broker) Close() error {
	var err error
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		b.stop()
		b.wg.Wait()
		if b.ownClient {
			err = b.rdb.Close()
		}
	})
	return err
}

// decodeItems decodes a script's list of messages, each "<offset> <ms>
// <encoded message>" (a topic's list item, or a retained message).
func decodeItems(epoch string, reply any) ([]*pubsub.Message, error) {
	items, _ := reply.([]any)
	msgs := make([]*pubsub.Message, 0, len(items))
	for _, it := range items {
		m, err := decodeItem(epoch, str(it))
		if err != nil {
			return nil, fmt.Errorf("redis: read: %w", err)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// decodeItem decodes one item of decodeItems.
func decodeItem(epoch, item string) (*pubsub.Message, error) {
	s, rest, ok1 := strings.Cut(item, " ")
	ms, blob, ok2 := strings.Cut(rest, " ")
	seq, err1 := strconv.ParseUint(s, 10, 64)
	t, err2 := strconv.ParseUint(ms, 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("malformed item %.40q", item)
	}
	return decode(epoch, seq, t, blob)
}

// retainedSet returns retained messages in position order, each once (a
// message retained on several topics comes once per topic), or nil.
func retainedSet(msgs []*pubsub.Message) []*pubsub.Message {
	if len(msgs) == 0 {
		return nil
	}
	slices.SortFunc(msgs, func(a, b *pubsub.Message) int { return cmpUint(a.Pos.Offset, b.Pos.Offset) })
	return slices.CompactFunc(msgs, func(a, b *pubsub.Message) bool { return a.Pos == b.Pos })
}

func decode(epoch string, seq, ms uint64, blob string) (*pubsub.Message, error) {
	m, err := codec.Decode([]byte(blob))
	if err != nil {
		return nil, fmt.Errorf("message %d: %w", seq, err)
	}
	m.Pos = pubsub.Position{Epoch: epoch, Offset: seq}
	m.Time = time.UnixMilli(int64(ms))
	return m, nil
}

func dedupe(topics []string) []string {
	out := make([]string, 0, len(topics))
	for _, t := range topics {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func flag(v bool) int {
	if v {
		return 1
	}
	return 0
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// str returns a script reply element as a string.
func str(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	}
	return fmt.Sprint(v)
}

// toUint returns a script reply element (a Lua number or a decimal string)
// as a uint64; 0 when it is neither.
func toUint(v any) uint64 {
	switch v := v.(type) {
	case int64:
		if v > 0 {
			return uint64(v)
		}
	case string:
		n, _ := strconv.ParseUint(v, 10, 64)
		return n
	}
	return 0
}
