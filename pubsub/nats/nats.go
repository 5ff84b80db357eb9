package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/internal/codec"
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
// Lock order: subjectState.mu → Broker.mu or Broker.subjMu (each taken
// alone, briefly, while a publish holds its subject's lock); connState.mu
// and trimmer.mu are taken alone.
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

	// listenFrom is where the next Listen starts: the head when the broker
	// was created, then where the last Listen stopped (guarded by mu).
	listenFrom position

	conn *connState // the connection's state, from its status events

	subjMu   sync.Mutex
	subjects map[string]*subjectState
	indexed  sync.Map // "<topic>\x00<subject>" -> struct{}: index entries known to exist

	life      context.Context
	stop      context.CancelFunc
	closed    atomic.Bool
	closeOnce sync.Once
	wg        sync.WaitGroup // the trimmer's goroutines
}

type position struct {
	epoch  string
	offset uint64
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
	info, err := b.ensureStream(cctx, true)
	if err != nil {
		b.stop()
		b.wg.Wait()
		b.conn.stop()
		return nil, b.fail(ctx, "open", err)
	}
	b.listenFrom = position{epoch: epochOf(info), offset: info.State.LastSeq}
	if o.Retention.MaxBytes > 0 {
		tr := newTrimmer(b)
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
		// Long enough to send a publish again after a reconnect (see send).
		Duplicates: max(2*b.o.Timeout, 30*time.Second),
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
// context error, ErrClosed, or ErrUnavailable.
func (b *Broker) fail(ctx context.Context, op string, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("nats: %s: %w", op, ctx.Err())
	case b.closed.Load():
		return pubsub.ErrClosed
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
// retries). It returns ErrTopicFinished if the subject's topic is finished.
// ss.mu must be held.
func (b *Broker) publishOn(ctx context.Context, subject string, ss *subjectState, hdr natsgo.Header, data []byte, prev uint64, final bool, finalOf uint64) (uint64, error) {
	if !ss.known {
		if err := b.refresh(ctx, subject, ss); err != nil {
			return 0, err
		}
	}
	id := nuid.Next()
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
		ss.last, ss.lastID, ss.final, ss.finalOf, ss.prevBound = ack.Sequence, id, final, finalOf, 0
		if final && finalOf == 0 {
			ss.finalOf = ack.Sequence
		}
		return ack.Sequence, nil
	}
	return 0, errors.New("too much contention on the subject")
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
	seq, err := b.publishOn(ctx, subject, ss, nil, blob, 0, m.Final, 0)
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
			_, err := b.publishOn(ctx, ts, tss, hdr, nil, 0, true, seq)
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

// Read returns a snapshot for q: Head is the stream's last sequence when
// the read starts; the messages up to it are read afterwards (the stream
// only grows, so none is missing but those evicted meanwhile, which are
// reported as truncation).
func (b *Broker) Read(ctx context.Context, q pubsub.Query) (pubsub.Snapshot, error) {
	if err := b.check(ctx); err != nil {
		return pubsub.Snapshot{}, err
	}
	octx := ctx
	ctx, cancel := b.bound(ctx)
	defer cancel()
	snap, err := b.read(ctx, q)
	if err != nil {
		return pubsub.Snapshot{}, b.fail(octx, "read", err)
	}
	return snap, nil
}

func (b *Broker) read(ctx context.Context, q pubsub.Query) (pubsub.Snapshot, error) {
	s, kv, _ := b.current()
	info, err := s.Info(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		info, err = b.ensureStream(ctx, true)
		s, kv, _ = b.current()
	}
	if err != nil {
		return pubsub.Snapshot{}, err
	}
	epoch := epochOf(info)
	if epoch != b.Epoch() {
		// Recreated under us: take the new stream handle.
		if info, err = b.ensureStream(ctx, true); err != nil {
			return pubsub.Snapshot{}, err
		}
		s, kv, _ = b.current()
		epoch = epochOf(info)
	}
	head := info.State.LastSeq
	snap := pubsub.Snapshot{Head: pubsub.Position{Epoch: epoch, Offset: head}}
	var after uint64
	if q.After != nil {
		if q.After.Epoch == epoch {
			after = q.After.Offset
		} else {
			snap.EpochChanged = true
		}
	}
	topics := dedupe(q.Topics)
	lasts := make(map[string]*jetstream.RawStreamMsg) // subject -> newest message
	var subjects []string                             // to read, each once
	seen := make(map[uint64]bool)
	for _, topic := range topics {
		subject := b.subject(topic)
		last, err := lastOn(ctx, s, subject)
		if err != nil {
			return pubsub.Snapshot{}, err
		}
		lasts[subject] = last
		if of, ok := finalOf(last); ok && last.Sequence <= head {
			if snap.Finals == nil {
				snap.Finals = make(map[string]pubsub.Position)
			}
			snap.Finals[topic] = pubsub.Position{Epoch: epoch, Offset: of}
		}
		if q.After == nil {
			r, err := b.retained(ctx, kv, epoch, topic, last, head)
			if err != nil {
				return pubsub.Snapshot{}, err
			}
			if r != nil && !seen[r.Pos.Offset] {
				seen[r.Pos.Offset] = true
				snap.Retained = append(snap.Retained, r)
			}
			continue
		}
		if !slices.Contains(subjects, subject) {
			subjects = append(subjects, subject)
		}
		entry, err := b.kvGet(ctx, stateKey("x", topic))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return pubsub.Snapshot{}, err
		default:
			for _, subj := range parseIndex(entry.Value(), epoch) {
				if !slices.Contains(subjects, subj) {
					subjects = append(subjects, subj)
				}
			}
		}
	}
	for _, subject := range subjects {
		last, known := lasts[subject]
		msgs, truncated, err := b.history(ctx, s, epoch, subject, topics, after, head, last, known)
		if err != nil {
			return pubsub.Snapshot{}, err
		}
		snap.Truncated = snap.Truncated || truncated
		for _, m := range msgs {
			if !seen[m.Pos.Offset] {
				seen[m.Pos.Offset] = true
				snap.Events = append(snap.Events, m)
			}
		}
	}
	if q.After != nil && (snap.Truncated || snap.EpochChanged) {
		// A reset: the subscriber starts again from the topics' state.
		for _, topic := range topics {
			r, err := b.retained(ctx, kv, epoch, topic, lasts[b.subject(topic)], head)
			if err != nil {
				return pubsub.Snapshot{}, err
			}
			if r != nil && !slices.ContainsFunc(snap.Retained, func(m *pubsub.Message) bool { return m.Pos == r.Pos }) {
				snap.Retained = append(snap.Retained, r)
			}
		}
	}
	sortByOffset(snap.Events)
	sortByOffset(snap.Retained)
	return snap, nil
}

// firstSeq returns the stream's first sequence: after the last one when
// it holds no message (the state's FirstSeq may lag behind an expiry).
func firstSeq(info *jetstream.StreamInfo) uint64 {
	if info.State.Msgs == 0 {
		return info.State.LastSeq + 1
	}
	return info.State.FirstSeq
}

// readBatch is how many messages of a subject Read fetches one by one
// before it reads the rest with a consumer.
const readBatch = 8

// history returns the messages on subject after `after` up to head that
// have one of topics, and whether some of the subject's messages after
// `after` left the stream. Truncation is exact per subject: each message
// carries (hdrPrev) the sequence of the previous message on its subject,
// or a bound on it, so the first message kept after `after` tells whether
// one before it is gone, and each next one whether one between left while
// the subject was read. last is the subject's newest message if known.
func (b *Broker) history(ctx context.Context, s jetstream.Stream, epoch, subject string, topics []string, after, head uint64, last *jetstream.RawStreamMsg, lastKnown bool) ([]*pubsub.Message, bool, error) {
	next := func(from uint64) (*jetstream.RawStreamMsg, error) {
		m, err := s.GetMsg(ctx, from, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, nil
		}
		return m, err
	}
	g, err := next(after + 1)
	if err != nil {
		return nil, false, err
	}
	if g == nil {
		// Nothing kept after `after`. If the subject keeps older messages,
		// every evicted one is older still. If it is empty, its messages
		// (if any) left with the oldest of the stream.
		if !lastKnown {
			if last, err = lastOn(ctx, s, subject); err != nil {
				return nil, false, err
			}
		}
		if last != nil {
			return nil, false, nil
		}
		info, err := s.Info(ctx)
		if err != nil {
			return nil, false, err
		}
		return nil, after+1 < firstSeq(info), nil
	}
	// Each message names its predecessor on the subject: one after the
	// last message read (at first, after the client's position) means
	// that messages between left the stream, before or during this read.
	truncated := false
	seen := after
	var out []*pubsub.Message
	add := func(seq uint64, hdr natsgo.Header, data []byte, t time.Time) {
		if prev, err := strconv.ParseUint(hdr.Get(hdrPrev), 10, 64); err == nil && prev > seen {
			truncated = true // the message at prev is gone (or may be)
		}
		seen = seq
		if hdr.Get(hdrMarker) != "" {
			return
		}
		m, err := codec.Decode(data)
		if err != nil {
			b.o.Logger.Error("nats: skipping an undecodable message", "seq", seq, "err", err)
			return
		}
		if slices.ContainsFunc(topics, m.HasTopic) {
			m.Pos = pubsub.Position{Epoch: epoch, Offset: seq}
			m.Time = t
			out = append(out, m)
		}
	}
	for n := 0; g != nil && g.Sequence <= head; n++ {
		add(g.Sequence, g.Header, g.Data, g.Time)
		if g.Sequence >= head {
			return out, truncated, nil
		}
		if n == readBatch {
			_, err := b.scan(ctx, s, subject, g.Sequence+1, head, add)
			return out, truncated, err
		}
		if g, err = next(g.Sequence + 1); err != nil {
			return nil, false, err
		}
	}
	return out, truncated, nil
}

// scan hands the messages on subject from `from` up to head to add, read in
// batches with an ephemeral consumer.
func (b *Broker) scan(ctx context.Context, s jetstream.Stream, subject string, from, head uint64, add func(uint64, natsgo.Header, []byte, time.Time)) (bool, error) {
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     subject,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 10 * time.Second,
		MemoryStorage:     true,
		Replicas:          1,
	})
	if err != nil {
		return false, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = s.DeleteConsumer(dctx, cons.CachedInfo().Name)
		cancel()
	}()
	for {
		batch, err := cons.FetchNoWait(256)
		if errors.Is(err, jetstream.ErrNoMessages) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				continue
			}
			seq := md.Sequence.Stream
			if seq > head {
				return true, nil
			}
			add(seq, msg.Headers(), msg.Data(), md.Timestamp)
			if seq == head {
				return true, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return false, err
		}
		if got == 0 {
			return true, nil
		}
	}
}

// retained returns topic's retained message at or before head: the newer
// of the bucket's and the subject's newest message if that is retained.
func (b *Broker) retained(ctx context.Context, kv jetstream.KeyValue, epoch, topic string, last *jetstream.RawStreamMsg, head uint64) (*pubsub.Message, error) {
	var best *pubsub.Message
	entry, err := b.kvGet(ctx, stateKey("r", topic))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return nil, err
	default:
		if m, ok := parseRetained(entry.Value(), epoch); ok && m.Pos.Offset <= head {
			best = m
		}
	}
	if last != nil && last.Sequence <= head && last.Header.Get(hdrMarker) == "" && (best == nil || last.Sequence > best.Pos.Offset) {
		if m, err := codec.Decode(last.Data); err == nil && m.Retain {
			m.Pos = pubsub.Position{Epoch: epoch, Offset: last.Sequence}
			m.Time = last.Time
			best = m
		}
	}
	return best, nil
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
		if _, err := b.publishOn(ctx, subject, ss, hdr, nil, last.Sequence, false, 0); err != nil {
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

func sortByOffset(ms []*pubsub.Message) {
	slices.SortFunc(ms, func(a, b *pubsub.Message) int {
		switch {
		case a.Pos.Offset < b.Pos.Offset:
			return -1
		case a.Pos.Offset > b.Pos.Offset:
			return 1
		}
		return 0
	})
}
