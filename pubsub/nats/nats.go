package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/pubsub"
)

// Headers Herald sets on stored messages.
const (
	// hdrPrev is the sequence of the previous message on the same subject
	// (0: unknown, the subject was empty).
	hdrPrev = "Herald-Prev"
	// hdrMarker marks a message that is not an event: "final" (another
	// topic's final message also finishes this one) or "purge".
	hdrMarker = "Herald-Marker"
	// hdrOf is, on a final marker, the sequence of the final message.
	hdrOf = "Herald-Of"
)

// Options configure a Broker. The zero value is valid.
type Options struct {
	// Stream is the JetStream stream's name; its subjects are
	// "<Stream>.t.<topic>" with the topic base64url-encoded, and its state
	// bucket (a JetStream key-value bucket) is "<Stream>_state". Every node
	// of a deployment uses the same name. Letters, digits, '-' and '_'.
	// Default "HERALD".
	Stream string
	// Retention bounds history; it is mapped to the stream's limits
	// (MaxMsgsPerSubject, MaxAge, MaxBytes). Zero fields mean no limit.
	Retention pubsub.Retention
	// Replicas of the stream and bucket in a NATS cluster. Default 1.
	Replicas int
	// Memory keeps the stream in memory instead of files. Default false.
	Memory bool
	// Timeout bounds each publish and read that has no earlier deadline,
	// so that requests fail (pubsub.ErrUnavailable) rather than hang while
	// NATS cannot be reached. Default 5s.
	Timeout time.Duration
	// Logger receives the broker's logs. Default slog.Default().
	Logger *slog.Logger
}

// Broker is a pubsub.Broker on NATS JetStream. Create one with New or
// Open. All methods are safe for concurrent use.
//
// Lock order: fastPath.mu (held by a wave) → subjectState.mu → Broker.mu
// or Broker.subjMu (each taken alone, briefly, while a publish holds its
// subject's lock); connState.mu and trimmer.mu are taken alone.
type Broker struct {
	nc      *natsgo.Conn
	ownConn bool
	js      jetstream.JetStream
	o       Options
	prefix  string // "<Stream>.t."

	mu     sync.Mutex
	stream jetstream.Stream
	kv     jetstream.KeyValue
	epoch  string

	conn *connState // the connection's state, from its status events

	subjMu   sync.Mutex
	subjects map[string]*subjectState
	indexed  sync.Map // "<topic>\x00<subject>" -> struct{}: index entries known to exist

	trim *trimmer // nil without Retention.MaxBytes
	fast fastPath // batches without the per-subject check while this node writes alone

	life      context.Context
	stop      context.CancelFunc
	closed    atomic.Bool
	closeOnce sync.Once
	wg        sync.WaitGroup // the trimmer's goroutines
}

// subjectState is what this node knows of a subject's newest message. Its
// mutex serialises this node's publishes on the subject.
type subjectState struct {
	mu      sync.Mutex
	known   bool
	last    uint64 // sequence of the newest message, 0 if none
	lastID  string // its Nats-Msg-Id
	final   bool
	finalOf uint64
	// prevBound, when the subject is empty, bounds the sequence of the
	// messages it had: they all left the stream before it.
	prevBound uint64
	// purged: the newest message is a purge marker (the topic has no
	// message since its purge).
	purged bool
	// fastGen: the subject is in the fast path's set of generation
	// fastGen (see fastPath).
	fastGen atomic.Uint64
}

// tail returns the sequence of the newest event on the subject, 0 when it
// has none (empty, or purged since).
func (ss *subjectState) tail() uint64 {
	if ss.purged {
		return 0
	}
	return ss.last
}

var (
	_ pubsub.Broker    = (*Broker)(nil)
	_ pubsub.Purger    = (*Broker)(nil)
	_ pubsub.Inspector = (*Broker)(nil)
)

// DefaultStream is the stream name used when Options.Stream is empty.
const DefaultStream = "HERALD"

// New returns a Broker on the JetStream of nc, which the caller keeps and
// closes after the Broker. It creates the stream and its bucket if needed
// and updates the stream's limits to the retention. It fails (wrapping
// pubsub.ErrUnavailable) when JetStream cannot be reached.
func New(ctx context.Context, nc *natsgo.Conn, opts *Options) (*Broker, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if !validStreamName(o.Stream) {
		return nil, fmt.Errorf("nats: invalid stream name %q: use letters, digits, '-' and '_'", o.Stream)
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	b := &Broker{nc: nc, js: js, o: o, prefix: o.Stream + ".t.", subjects: make(map[string]*subjectState), conn: newConnState(nc.IsConnected())}
	b.life, b.stop = context.WithCancel(context.Background())
	b.wg.Add(1)
	go func() { defer b.wg.Done(); b.watchConn(b.life) }()
	cctx, cancel := b.bound(ctx)
	defer cancel()
	_, err = b.ensureStream(cctx, true)
	if err != nil {
		b.stop()
		b.wg.Wait()
		b.conn.stop()
		return nil, b.fail(ctx, "open", err)
	}
	if o.Retention.MaxBytes > 0 {
		tr := newTrimmer(b)
		b.trim = tr
		b.wg.Add(2)
		go func() { defer b.wg.Done(); tr.run(b.life) }()
		go func() { defer b.wg.Done(); tr.purger(b.life, time.Second) }()
	}
	return b, nil
}

// Open connects to the NATS servers of rawURL (comma-separated URLs, e.g.
// "nats://n1:4222,nats://n2:4222"; credentials in the URL) and returns a
// Broker that closes the connection when it is closed.
func Open(ctx context.Context, rawURL string, opts *Options) (*Broker, error) {
	var log *slog.Logger
	if opts != nil {
		log = opts.Logger
	}
	if log == nil {
		log = slog.Default()
	}
	nc, err := natsgo.Connect(rawURL,
		natsgo.Name("herald"),
		natsgo.MaxReconnects(-1),
		// Try again soon after a server restart (the default waits 2s).
		natsgo.ReconnectWait(500*time.Millisecond),
		// Publishing while disconnected fails at once (503) instead of
		// being buffered for an unknown time.
		natsgo.ReconnectBufSize(-1),
		// The client's asynchronous errors go to the log, not stderr.
		natsgo.ErrorHandler(asyncErrors(log)),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: nats: connect: %v", pubsub.ErrUnavailable, err)
	}
	b, err := New(ctx, nc, opts)
	if err != nil {
		nc.Close()
		return nil, err
	}
	b.ownConn = true
	return b, nil
}

func validStreamName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// subject returns the subject of a topic: the topic base64url-encoded is a
// valid subject token whatever the topic holds (dots, spaces, wildcards).
func (b *Broker) subject(topic string) string {
	return b.prefix + base64.RawURLEncoding.EncodeToString([]byte(topic))
}

// topicOf returns the topic of a subject made by subject.
func (b *Broker) topicOf(subject string) (string, bool) {
	tok, ok := strings.CutPrefix(subject, b.prefix)
	if !ok {
		return "", false
	}
	t, err := base64.RawURLEncoding.DecodeString(tok)
	return string(t), err == nil
}

// stateKey returns the bucket key of a topic's retained message ("r") or
// index entry ("x").
func stateKey(kind, topic string) string {
	return kind + "." + base64.RawURLEncoding.EncodeToString([]byte(topic))
}

// streamConfig is the stream Herald needs.
func (b *Broker) streamConfig() jetstream.StreamConfig {
	r := b.o.Retention
	cfg := jetstream.StreamConfig{
		Name:        b.o.Stream,
		Description: "Herald event log",
		Subjects:    []string{b.o.Stream + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxMsgs:     -1,
		// Herald shares the byte bound fairly between subjects itself
		// (see trimmer): the stream has no byte limit of its own.
		MaxBytes:          -1,
		MaxMsgsPerSubject: -1,
		MaxAge:            r.MaxAge,
		Storage:           jetstream.FileStorage,
		Replicas:          b.o.Replicas,
		// Long enough to send a publish again after a reconnect (see send),
		// and for a publisher to retry a message with its ID.
		Duplicates: max(2*b.o.Timeout, pubsub.DedupeWindow),
	}
	if r.MaxEvents > 0 {
		cfg.MaxMsgsPerSubject = int64(r.MaxEvents)
	}
	if r.MaxAge > 0 && r.MaxAge < cfg.Duplicates {
		cfg.Duplicates = r.MaxAge
	}
	if b.o.Memory {
		cfg.Storage = jetstream.MemoryStorage
	}
	return cfg
}

// ensureStream returns the stream's info, creating the stream (a new
// epoch) when it does not exist. With configure it also brings its limits
// to the configured retention and opens the state bucket.
func (b *Broker) ensureStream(ctx context.Context, configure bool) (*jetstream.StreamInfo, error) {
	cfg := b.streamConfig()
	s, err := b.js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = b.js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = b.js.Stream(ctx, cfg.Name) // another node was first
		}
		configure = true
	} else if err == nil && configure {
		cur := s.CachedInfo().Config
		if cur.MaxMsgsPerSubject != cfg.MaxMsgsPerSubject || cur.MaxAge != cfg.MaxAge || cur.MaxBytes != cfg.MaxBytes || cur.Duplicates != cfg.Duplicates {
			b.o.Logger.Info("nats: updating the stream's limits to the configured retention", "stream", cfg.Name,
				"max_msgs_per_subject", cfg.MaxMsgsPerSubject, "max_age", cfg.MaxAge, "max_bytes", cfg.MaxBytes, "duplicate_window", cfg.Duplicates)
			cur.MaxMsgsPerSubject, cur.MaxAge, cur.MaxBytes, cur.Duplicates = cfg.MaxMsgsPerSubject, cfg.MaxAge, cfg.MaxBytes, cfg.Duplicates
			s, err = b.js.UpdateStream(ctx, cur)
		}
	}
	if err != nil {
		return nil, err
	}
	info := s.CachedInfo()
	epoch := epochOf(info)
	b.mu.Lock()
	b.stream = s
	changed := b.epoch != "" && b.epoch != epoch
	b.epoch = epoch
	needKV := b.kv == nil
	b.mu.Unlock()
	if changed {
		b.forgetSubjects()
	}
	if configure || needKV {
		if _, err := b.openBucket(ctx); err != nil {
			return nil, err
		}
	}
	return info, nil
}

// kvGet reads key from the state bucket, creating the bucket again if it
// is missing (deleted, or lost with the server's storage).
func (b *Broker) kvGet(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	_, kv, _ := b.current()
	// A get from a bucket that is gone waits for its whole deadline (the
	// client retries "no responders"): try briefly first.
	gctx, cancel := context.WithTimeout(ctx, time.Second)
	entry, err := kv.Get(gctx, key)
	cancel()
	if err == nil || errors.Is(err, jetstream.ErrKeyNotFound) || ctx.Err() != nil {
		return entry, err
	}
	if _, ierr := b.js.KeyValue(ctx, b.o.Stream+"_state"); missingBucket(ierr) {
		b.o.Logger.Warn("nats: the state bucket is missing; creating it again (retained messages and the topic index were lost)", "bucket", b.o.Stream+"_state")
		if kv, err = b.openBucket(ctx); err != nil {
			return nil, err
		}
	}
	return kv.Get(ctx, key)
}

// openBucket creates (or opens) the state bucket.
func (b *Broker) openBucket(ctx context.Context) (jetstream.KeyValue, error) {
	cfg := b.streamConfig()
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      b.o.Stream + "_state",
		Description: "Herald retained messages and topic index",
		History:     1,
		Storage:     cfg.Storage,
		Replicas:    b.o.Replicas,
	})
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.kv = kv
	b.mu.Unlock()
	return kv, nil
}

func missingBucket(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamNotFound
}

// epochOf derives the epoch from the stream's creation time: every node
// computes the same one, and a stream that is deleted and created again
// (or lost with the server's storage) gets a new one.
func epochOf(info *jetstream.StreamInfo) string {
	return strconv.FormatInt(info.Created.UnixNano(), 36)
}

// forgetSubjects drops what this node knew of subjects (after an epoch
// change).
func (b *Broker) forgetSubjects() {
	b.subjMu.Lock()
	b.subjects = make(map[string]*subjectState)
	b.subjMu.Unlock()
	b.indexed.Clear()
}

// Epoch returns the log's epoch as this node last saw it.
func (b *Broker) Epoch() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.epoch
}

func (b *Broker) current() (jetstream.Stream, jetstream.KeyValue, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stream, b.kv, b.epoch
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

// bound returns ctx limited by Options.Timeout.
func (b *Broker) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.o.Timeout)
}

// fail maps an error of a NATS call to the broker's errors: the caller's
// context error, ErrClosed, ErrTooLarge, or ErrUnavailable.
func (b *Broker) fail(ctx context.Context, op string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("nats: %s: %w", op, ctx.Err())
	case b.closed.Load():
		return pubsub.ErrClosed
	case errors.Is(err, natsgo.ErrMaxPayload):
		return fmt.Errorf("%w: nats: %s: %v (the server's max_payload is %d bytes)", pubsub.ErrTooLarge, op, err, b.nc.MaxPayload())
	}
	return fmt.Errorf("%w: nats: %s: %v", pubsub.ErrUnavailable, op, err)
}

func isWrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

func isNoStream(err error) bool {
	return errors.Is(err, natsgo.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound)
}

// Purge removes the messages stored on topic's subject and its retained
// state, and ends its finished state. Subscribers from before are told
// that history was truncated.
func (b *Broker) Purge(ctx context.Context, topic string) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	octx := ctx
	ctx, cancel := b.bound(ctx)
	defer cancel()
	subject := b.subject(topic)
	ss := b.subjectState(subject)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, kv, _ := b.current()
	last, err := lastOn(ctx, s, subject)
	if err != nil {
		return b.fail(octx, "purge", err)
	}
	if last != nil {
		if err := s.Purge(ctx, jetstream.WithPurgeSubject(subject)); err != nil {
			return b.fail(octx, "purge", err)
		}
		// A marker carries the chain on: clients from before the purge
		// learn that history was truncated.
		ss.known, ss.last, ss.final = true, 0, false
		hdr := natsgo.Header{hdrMarker: {"purge"}}
		if _, err := b.publishOn(ctx, subject, ss, hdr, nil, last.Sequence, false, 0, ""); err != nil {
			return b.fail(octx, "purge", err)
		}
	}
	for _, kind := range []string{"r", "x"} {
		if err := kv.Delete(ctx, stateKey(kind, topic)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return b.fail(octx, "purge", err)
		}
	}
	b.indexed.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), topic+"\x00") {
			b.indexed.Delete(k)
		}
		return true
	})
	return nil
}

// Topics describes every topic held in the stream or the state bucket. It
// implements pubsub.Inspector.
func (b *Broker) Topics(ctx context.Context) ([]pubsub.TopicInfo, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	octx := ctx
	ctx, cancel := b.bound(ctx)
	defer cancel()
	s, kv, epoch := b.current()
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(b.prefix+">"))
	if err != nil {
		return nil, b.fail(octx, "topics", err)
	}
	byTopic := make(map[string]*pubsub.TopicInfo)
	for subj, n := range info.State.Subjects {
		t, ok := b.topicOf(subj)
		if !ok {
			continue
		}
		ti := &pubsub.TopicInfo{Topic: t, Messages: int(n)}
		last, err := lastOn(ctx, s, subj)
		if err != nil {
			return nil, b.fail(octx, "topics", err)
		}
		_, ti.Finished = finalOf(last)
		if last != nil && last.Header.Get(hdrMarker) != "" {
			ti.Messages--
		}
		byTopic[t] = ti
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, b.fail(octx, "topics", err)
	}
	for k := range keys.Keys() {
		tok, ok := strings.CutPrefix(k, "r.")
		if !ok {
			continue
		}
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			continue
		}
		entry, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		if _, ok := parseRetained(entry.Value(), epoch); !ok {
			continue
		}
		t := string(raw)
		if byTopic[t] == nil {
			byTopic[t] = &pubsub.TopicInfo{Topic: t}
		}
		byTopic[t].Retained = true
	}
	out := make([]pubsub.TopicInfo, 0, len(byTopic))
	for _, ti := range byTopic {
		out = append(out, *ti)
	}
	slices.SortFunc(out, func(a, b pubsub.TopicInfo) int { return strings.Compare(a.Topic, b.Topic) })
	return out, nil
}

// Close stops the broker: Listen returns, later calls fail with
// pubsub.ErrClosed. It closes the NATS connection if the broker opened it.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.closed.Store(true)
		b.stop()
		b.wg.Wait()
		b.conn.stop()
		if b.ownConn {
			b.nc.Close()
		}
	})
	return nil
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
