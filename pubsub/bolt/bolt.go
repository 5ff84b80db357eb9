package bolt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/heraldpush/herald/pubsub"
)

// FileName is the name of the file herald serve keeps in its --data-dir.
const FileName = "herald.db"

// Options configure a Broker. A nil *Options means all defaults.
type Options struct {
	// Retention bounds history. Zero fields mean no limit of that kind.
	// MaxBytes bounds the history's size as pubsub.Message.Size counts
	// it; the file is larger by the store's overhead (see the package
	// documentation). Default: no limits.
	Retention pubsub.Retention
	// SweepInterval is how often age-based retention runs. Default 1s.
	SweepInterval time.Duration
	// MaxBatch caps how many publishes share one transaction (one fsync).
	// Default 1000.
	MaxBatch int
	// LockTimeout is how long Open waits for the file lock held by another
	// process. Default 5s.
	LockTimeout time.Duration
	// CompactMinBytes: on Open, a file larger than this that is mostly
	// free pages (after retention shrank history) is rewritten compactly.
	// Default 64 MiB; negative turns compaction off.
	CompactMinBytes int64
	// Logger receives the broker's logs. Default slog.Default().
	Logger *slog.Logger
}

// Broker is a pubsub.Broker that keeps its log in a bbolt file. Create one
// with Open and Close it when done. All methods are safe for concurrent use.
//
// One goroutine (the writer) owns every write: it takes the publishes queued
// meanwhile, commits them in one transaction, hands them to the Handler in
// position order, and only then answers their Publish calls.
//
// Lock order: closeMu → hmu. The writer holds hmu while the Handler runs,
// so a Handler must never call back into the Broker.
type Broker struct {
	db    *bbolt.DB
	path  string
	epoch string
	o     Options
	log   *slog.Logger

	ops  chan *op
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the writer has exited

	lastTime int64 // writer only: time of the newest message (Unix ns)

	closeMu sync.RWMutex
	closed  bool

	hmu     sync.Mutex
	handler pubsub.Handler
}

var (
	_ pubsub.Broker    = (*Broker)(nil)
	_ pubsub.Purger    = (*Broker)(nil)
	_ pubsub.Inspector = (*Broker)(nil)
)

// op is one request to the writer.
type op struct {
	kind  opKind
	msg   *pubsub.Message // opPublish, opPublishIf
	tail  uint64          // opPublishIf: the topic's expected tail
	topic string          // opPurge
	state atomic.Int32    // opPending, opTaken or opCancelled
	dup   bool            // published before (by ID): not stored again
	err   error
	done  chan struct{}
}

type opKind uint8

const (
	opPublish opKind = iota
	opPurge
	opPublishIf
)

const (
	opPending int32 = iota
	opTaken
	opCancelled
)

// Open opens (creating it if needed) the log in the file at path. A new file
// gets a new random epoch, which then never changes.
func Open(path string, opts *Options) (*Broker, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1000
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = 5 * time.Second
	}
	if o.CompactMinBytes == 0 {
		o.CompactMinBytes = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	b := &Broker{path: path, o: o, log: o.Logger}
	if err := b.open(); err != nil {
		return nil, err
	}
	if err := b.init(); err != nil {
		b.db.Close()
		return nil, err
	}
	if o.CompactMinBytes > 0 {
		if err := b.compactIfSparse(); err != nil {
			b.db.Close()
			return nil, err
		}
	}
	b.ops = make(chan *op, o.MaxBatch)
	b.stop = make(chan struct{})
	b.done = make(chan struct{})
	go b.run()
	return b, nil
}

// compactIfSparse rewrites the file when most of it is free pages, which
// happens after retention has shrunk history (bbolt reuses free pages but
// never shrinks its file). It runs in Open, before anything else uses the
// file; a crash during it leaves the original file intact.
func (b *Broker) compactIfSparse() error {
	fi, err := os.Stat(b.path)
	if err != nil {
		return fmt.Errorf("bolt: %w", err)
	}
	st := b.db.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * int64(b.db.Info().PageSize)
	if fi.Size() < b.o.CompactMinBytes || free*2 < fi.Size() {
		return nil
	}
	tmp := b.path + ".compact"
	dst, err := bbolt.Open(tmp, 0o600, &bbolt.Options{NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("bolt: compact: %w", err)
	}
	err = bbolt.Compact(dst, b.db, 64<<20)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("bolt: compact: %w", err)
	}
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("bolt: compact: %w", err)
	}
	if err := os.Rename(tmp, b.path); err != nil {
		return fmt.Errorf("bolt: compact: %w", err)
	}
	if err := syncDir(filepath.Dir(b.path)); err != nil {
		return fmt.Errorf("bolt: compact: %w", err)
	}
	if err := b.open(); err != nil {
		return err
	}
	after, _ := os.Stat(b.path)
	if after != nil {
		b.log.Info("bolt: compacted data file", "path", b.path, "before", fi.Size(), "after", after.Size())
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (b *Broker) open() error {
	// A compaction interrupted by a crash leaves its unfinished copy.
	_ = os.Remove(b.path + ".compact")
	db, err := bbolt.Open(b.path, 0o600, &bbolt.Options{
		Timeout:        b.o.LockTimeout,
		NoFreelistSync: true, // the freelist is rebuilt on open: faster commits
		FreelistType:   bbolt.FreelistMapType,
	})
	if errors.Is(err, bberrors.ErrTimeout) {
		return fmt.Errorf("bolt: open %s: file is locked (is another herald using it?)", b.path)
	}
	if err != nil {
		return fmt.Errorf("bolt: open %s: %w", b.path, err)
	}
	b.db = db
	return nil
}

// init creates the buckets and the epoch of a new file, checks an existing
// one, and applies the current retention to it.
func (b *Broker) init() error {
	return b.db.Update(func(tx *bbolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("bolt: create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyVersion); v != nil && getUint(meta, keyVersion) != layoutVersion && getUint(meta, keyVersion) != layoutVersion1 {
			return fmt.Errorf("bolt: %s has layout version %d, this herald reads %d and %d", b.path, getUint(meta, keyVersion), layoutVersion1, layoutVersion)
		}
		if meta.Get(keyEpoch) == nil {
			if err := meta.Put(keyEpoch, []byte(pubsub.NewEpoch())); err != nil {
				return err
			}
		}
		// Version 2 records may be written from now on: an older herald
		// must refuse the file rather than misread them.
		if err := meta.Put(keyVersion, []byte{layoutVersion}); err != nil {
			return err
		}
		s, err := loadStore(tx)
		if err != nil {
			return err
		}
		if !pubsub.ValidEpoch(s.epoch) {
			return fmt.Errorf("bolt: %s: invalid epoch %q", b.path, s.epoch)
		}
		b.epoch = s.epoch
		if k, v := s.log.Cursor().Last(); k != nil {
			r, err := parseRecord(v)
			if err != nil {
				return fmt.Errorf("bolt: newest record: %w", err)
			}
			b.lastTime = r.time
		}
		if err := s.countBytes(); err != nil {
			return err
		}
		if err := s.trimTopics(b.o.Retention.MaxEvents); err != nil {
			return err
		}
		if b.o.Retention.MaxAge > 0 {
			if err := s.sweep(time.Now().Add(-b.o.Retention.MaxAge).UnixNano()); err != nil {
				return err
			}
		}
		if err := s.enforceBytes(b.o.Retention.MaxBytes); err != nil {
			return err
		}
		return s.save()
	})
}

// Path returns the file the broker stores its log in.
func (b *Broker) Path() string { return b.path }

// Epoch returns the log's epoch, created with the file.
func (b *Broker) Epoch() string { return b.epoch }

// Publish stores m, hands it to the Handler, and returns its position once
// the transaction that stored it has been committed to disk (fsync). When
// ctx ends first, Publish returns ctx's error and m is not stored, unless
// its transaction had already begun: then Publish waits for it.
func (b *Broker) Publish(ctx context.Context, m *pubsub.Message) (pubsub.Position, error) {
	if len(m.Topics) == 0 {
		return pubsub.Position{}, errors.New("bolt: publish: no topic")
	}
	o := &op{kind: opPublish, msg: m, done: make(chan struct{})}
	if err := b.submit(ctx, o); err != nil {
		return pubsub.Position{}, err
	}
	return m.Pos, nil
}

// submit queues o for the writer and waits for its result.
func (b *Broker) submit(ctx context.Context, o *op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.closeMu.RLock()
	if b.closed {
		b.closeMu.RUnlock()
		return pubsub.ErrClosed
	}
	select {
	case b.ops <- o:
	case <-ctx.Done():
		b.closeMu.RUnlock()
		return ctx.Err()
	}
	b.closeMu.RUnlock()
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		if o.state.CompareAndSwap(opPending, opCancelled) {
			return ctx.Err()
		}
		<-o.done // already in a transaction: its outcome is the answer
		return o.err
	}
}

// run is the writer: it commits queued operations in batches and sweeps.
func (b *Broker) run() {
	defer close(b.done)
	var tick <-chan time.Time
	if b.o.Retention.MaxAge > 0 {
		t := time.NewTicker(b.o.SweepInterval)
		defer t.Stop()
		tick = t.C
	}
	batch := make([]*op, 0, b.o.MaxBatch)
	for {
		select {
		case <-b.stop:
			b.failQueued()
			return
		case <-tick:
			b.sweep()
		case o := <-b.ops:
			batch = append(batch[:0], o)
		fill:
			for len(batch) < b.o.MaxBatch {
				select {
				case o := <-b.ops:
					batch = append(batch, o)
				default:
					break fill
				}
			}
			b.commit(batch)
			clear(batch)
		}
	}
}

// failQueued answers every queued operation with ErrClosed.
func (b *Broker) failQueued() {
	for {
		select {
		case o := <-b.ops:
			o.err = pubsub.ErrClosed
			close(o.done)
		default:
			return
		}
	}
}

// now returns the time for a new batch: never before the previous one, so
// that the log is in time order too (age-based retention relies on it).
func (b *Broker) now() int64 {
	b.lastTime = max(time.Now().UnixNano(), b.lastTime)
	return b.lastTime
}

func unixTime(ns int64) time.Time { return time.Unix(0, ns) }

// commit runs a batch of operations in one transaction, delivers the
// published messages, and answers every operation.
func (b *Broker) commit(batch []*op) {
	ops := batch[:0:0]
	for _, o := range batch {
		if o.state.CompareAndSwap(opPending, opTaken) {
			ops = append(ops, o)
		} else {
			close(o.done) // cancelled: its Publish has returned
		}
	}
	if len(ops) == 0 {
		return
	}
	now := b.now()
	err := b.db.Update(func(tx *bbolt.Tx) error {
		s, err := loadStore(tx)
		if err != nil {
			return err
		}
		for _, o := range ops {
			o.err = nil
			switch o.kind {
			case opPublish, opPublishIf:
				if o.kind == opPublish {
					err = s.publish(o.msg, now, b.o.Retention.MaxEvents, true)
				} else {
					err = s.publishIf(o.msg, o.tail, now, b.o.Retention.MaxEvents)
				}
				var refused errRefused
				if errors.As(err, &refused) {
					o.err, err = refused.err, nil
				}
				if errors.Is(err, errAlreadyPublished) {
					o.dup, err = true, nil
				}
			case opPurge:
				err = s.purge([]byte(o.topic))
			}
			if err != nil {
				return err
			}
		}
		if err := s.enforceBytes(b.o.Retention.MaxBytes); err != nil {
			return err
		}
		return s.save()
	})
	if err != nil {
		b.log.Error("bolt: commit failed", "path", b.path, "ops", len(ops), "err", err)
		for _, o := range ops {
			o.err = fmt.Errorf("%w: bolt: commit: %v", pubsub.ErrUnavailable, err)
			if o.kind != opPurge {
				o.msg.Pos, o.msg.Time = pubsub.Position{}, time.Time{}
			}
		}
	} else {
		b.hmu.Lock()
		if h := b.handler; h != nil {
			for _, o := range ops {
				if o.kind != opPurge && o.err == nil && !o.dup {
					h.HandleMessage(o.msg)
				}
			}
		}
		b.hmu.Unlock()
	}
	for _, o := range ops {
		close(o.done)
	}
}

// sweep applies age-based retention.
func (b *Broker) sweep() {
	cutoff := time.Now().Add(-b.o.Retention.MaxAge).UnixNano()
	err := b.db.Update(func(tx *bbolt.Tx) error {
		s, err := loadStore(tx)
		if err != nil {
			return err
		}
		if due, err := s.sweepDue(cutoff); err != nil || !due {
			if err == nil {
				err = errNothingToDo
			}
			return err
		}
		if err := s.sweep(cutoff); err != nil {
			return err
		}
		return s.save()
	})
	if err != nil && !errors.Is(err, errNothingToDo) {
		b.log.Error("bolt: retention sweep failed", "path", b.path, "err", err)
	}
}

// errNothingToDo rolls back a transaction that would change nothing.
var errNothingToDo = errors.New("nothing to do")

// Read returns a snapshot for q from one read transaction.
func (b *Broker) Read(ctx context.Context, q pubsub.Query) (pubsub.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return pubsub.Snapshot{}, err
	}
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return pubsub.Snapshot{}, pubsub.ErrClosed
	}
	var snap pubsub.Snapshot
	err := b.db.View(func(tx *bbolt.Tx) error {
		s, err := loadStore(tx)
		if err != nil {
			return err
		}
		snap, err = s.snapshot(q)
		return err
	})
	if err != nil {
		return pubsub.Snapshot{}, fmt.Errorf("bolt: read: %w", err)
	}
	return snap, nil
}

// Listen hands every message committed from now on to h, in position
// order, until ctx ends or the broker is closed. It calls h.HandleStart
// (if h has it) with the head once h is set.
func (b *Broker) Listen(ctx context.Context, h pubsub.Handler) error {
	b.closeMu.RLock()
	closed := b.closed
	b.closeMu.RUnlock()
	if closed {
		return pubsub.ErrClosed
	}
	b.hmu.Lock()
	b.handler = h
	if sh, ok := h.(pubsub.StartHandler); ok {
		// The writer delivers under hmu after committing: whatever is
		// committed after this read reaches h (what was committed before
		// and is not delivered yet may reach it too, at or below head).
		var seq uint64
		err := b.db.View(func(tx *bbolt.Tx) error {
			s, err := loadStore(tx)
			if err == nil {
				seq = s.seq
			}
			return err
		})
		if err != nil {
			b.handler = nil
			b.hmu.Unlock()
			return fmt.Errorf("bolt: listen: %w", err)
		}
		sh.HandleStart(pubsub.Position{Epoch: b.epoch, Offset: seq})
	}
	b.hmu.Unlock()
	select {
	case <-ctx.Done():
	case <-b.stop:
	}
	b.hmu.Lock()
	if b.handler == h {
		b.handler = nil
	}
	b.hmu.Unlock()
	return nil
}

// Purge removes topic's history, retained and final state. Subscribers
// resuming from before the purge are told that history was truncated.
func (b *Broker) Purge(ctx context.Context, topic string) error {
	return b.submit(ctx, &op{kind: opPurge, topic: topic, done: make(chan struct{})})
}

// Topics describes every topic the log holds, sorted by name.
func (b *Broker) Topics(ctx context.Context) ([]pubsub.TopicInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return nil, pubsub.ErrClosed
	}
	var out []pubsub.TopicInfo
	err := b.db.View(func(tx *bbolt.Tx) error {
		s, err := loadStore(tx)
		if err != nil {
			return err
		}
		out, err = s.topicInfos()
		return err
	})
	return out, err
}

// Stats describes the log on disk.
type Stats struct {
	Messages  int   // messages in history
	Bytes     int64 // history size, by pubsub.Message.Size
	FileBytes int64 // size of the file
}

// Stats returns the log's current size. It counts the log's records, so it
// is meant for tests and tools, not for hot paths.
func (b *Broker) Stats() (Stats, error) {
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return Stats{}, pubsub.ErrClosed
	}
	var st Stats
	err := b.db.View(func(tx *bbolt.Tx) error {
		s, err := loadStore(tx)
		if err != nil {
			return err
		}
		st = Stats{Messages: s.log.Stats().KeyN, Bytes: s.bytes, FileBytes: tx.Size()}
		return nil
	})
	return st, err
}

// Close stops the writer (queued publishes fail with pubsub.ErrClosed),
// ends Listen, and closes the file. It is idempotent.
func (b *Broker) Close() error {
	b.closeMu.Lock()
	if b.closed {
		b.closeMu.Unlock()
		return nil
	}
	b.closed = true
	close(b.stop)
	b.closeMu.Unlock()
	<-b.done
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("bolt: close: %w", err)
	}
	return nil
}

// ResetEpoch gives the log in the file at path a new random epoch, keeping
// its history, and returns the epoch. Run it after restoring a backup:
// clients that saw events the backup does not have hold positions that the
// restored log would give to other events, and the new epoch makes them
// reset instead of resuming silently past a gap. The file must not be in
// use.
func ResetEpoch(path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("bolt: %w", err)
	}
	b := &Broker{path: path, o: Options{LockTimeout: time.Second}}
	if err := b.open(); err != nil {
		return "", err
	}
	defer b.db.Close()
	epoch := pubsub.NewEpoch()
	err := b.db.Update(func(tx *bbolt.Tx) error {
		if _, err := loadStore(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyEpoch, []byte(epoch))
	})
	if err != nil {
		return "", fmt.Errorf("bolt: reset epoch of %s: %w", path, err)
	}
	return epoch, b.db.Close()
}
