package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
)

// Topic prefix of the streams broker's topics: a stream at /v1/stream/<path>
// is the topic "ds/<path>". Tokens name streams by these topics.
const TopicPrefix = "ds/"

// ErrNotConditional is returned by New for a broker that cannot serve
// streams.
var ErrNotConditional = errors.New("streams: the broker lacks pubsub.Conditional and pubsub.Purger (compare-and-append), which Durable Streams need")

// maxRetries bounds how often a write decides again after a conflict.
const maxRetries = 1000

// Options configure a Service.
type Options struct {
	// Hub fans out the streams broker's live messages to live reads; it
	// must be the hub of Broker.
	Hub *hub.Hub
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnWrite, if set, is called with a stream's topic after each create
	// of it and each append that added to its log (see hooks.go); it must
	// not block.
	OnWrite func(topic string)
}

// Service holds the streams of one streams broker. It is safe for
// concurrent use.
type Service struct {
	broker pubsub.Broker
	cond   pubsub.Conditional
	purger pubsub.Purger
	hub    *hub.Hub
	log    *slog.Logger
	now    func() time.Time
	// onWrite is Options.OnWrite.
	onWrite func(topic string)

	mu      sync.Mutex
	streams map[string]*entry
}

// entry is a stream's cached state. mu serialises this node's writes to
// the stream and guards the fields.
type entry struct {
	mu       sync.Mutex
	st       state
	refs     refState
	lastRead time.Time
	// loaded: st and refs were read from the log by the last load (not
	// only built from this node's writes), so an append may be decided on
	// them optimistically (see Append).
	loaded bool
}

// New returns a Service over b, which must implement pubsub.Conditional
// and pubsub.Purger.
func New(b pubsub.Broker, o Options) (*Service, error) {
	cond, ok := b.(pubsub.Conditional)
	purger, ok2 := b.(pubsub.Purger)
	if !ok || !ok2 {
		return nil, fmt.Errorf("%w (broker %T)", ErrNotConditional, b)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{broker: b, cond: cond, purger: purger, hub: o.Hub, log: o.Logger, now: o.Now, onWrite: o.OnWrite,
		streams: make(map[string]*entry)}, nil
}

// refusal is a refused request: its status, message and the protocol
// headers that go with it.
type refusal struct {
	status int
	msg    string
	hdr    [][2]string
}

func (r *refusal) Error() string { return r.msg }

func refuse(status int, format string, args ...any) *refusal {
	return &refusal{status: status, msg: fmt.Sprintf(format, args...)}
}

func (r *refusal) with(k, v string) *refusal {
	r.hdr = append(r.hdr, [2]string{k, v})
	return r
}

var errNotFound = func() error { return refuse(http.StatusNotFound, "no such stream") }

// entryOf returns topic's cache entry, creating it.
func (s *Service) entryOf(topic string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.streams[topic]
	if e == nil {
		e = &entry{}
		s.streams[topic] = e
	}
	return e
}

// refresh brings e up to the stream's log: it applies the messages after
// its cached tail, or rebuilds the state from the start of the log when the
// cached tail is not the log's any more (purged, or another epoch). e.mu is
// held.
func (s *Service) refresh(ctx context.Context, e *entry, topic string) error {
	tail, err := s.replay(ctx, topic, &e.st)
	if err != nil {
		return err
	}
	if e.st.tail != tail {
		// Messages kept no more (a broker with history limits): the
		// stream cannot be rebuilt from its log.
		return fmt.Errorf("streams: %s: the log's messages up to %s are gone", topic, tail)
	}
	return nil
}

// replayed is state built by applying a topic's messages in order: a
// stream's (state) or its references' (refState).
type replayed interface {
	// apply updates the state with m, the topic's next message.
	apply(m *pubsub.Message)
	// at is the position of the last message applied (zero: none).
	at() pubsub.Position
	// reset makes it the state of an empty topic.
	reset()
}

func (st *state) at() pubsub.Position { return st.tail }

func (st *state) reset() { *st = state{} }

// replay brings st up to topic's log: it applies the messages after st's
// position, or, when that position is not the log's any more (purged, or
// another epoch), resets st and applies the log from its start. It returns
// the log's tail as last read, which st's position falls short of only
// when the log's first messages are gone.
func (s *Service) replay(ctx context.Context, topic string, st replayed) (pubsub.Position, error) {
	msgs, tail, err := s.cond.ReadTopic(ctx, topic, st.at(), 0)
	if err == nil {
		for _, m := range msgs {
			st.apply(m)
		}
		if st.at() == tail {
			return tail, nil
		}
	} else if !errors.Is(err, pubsub.ErrEpochChanged) {
		return pubsub.Position{}, fmt.Errorf("streams: read %s: %w", topic, err)
	}
	st.reset()
	msgs, tail, err = s.cond.ReadTopic(ctx, topic, pubsub.Position{}, 0)
	if err != nil {
		return pubsub.Position{}, fmt.Errorf("streams: read %s: %w", topic, err)
	}
	for _, m := range msgs {
		st.apply(m)
	}
	return tail, nil
}

// presence tells whether a stream is there.
type presence uint8

const (
	absent      presence = iota
	present              // readable and writable
	softDeleted          // deleted while forks read it: gone for clients, kept for its forks
)

// load brings e up to the stream's log and its references, and deletes
// the stream when its TTL or expiry has passed. e.mu is held.
func (s *Service) load(ctx context.Context, e *entry, topic string) (presence, error) {
	e.loaded = false
	if err := s.refresh(ctx, e, topic); err != nil {
		return absent, err
	}
	if !e.st.exists {
		return absent, nil
	}
	if err := s.refreshRefs(ctx, e, topic); err != nil {
		return absent, err
	}
	if e.refs.soft || e.st.soft {
		return softDeleted, nil
	}
	if e.st.expired(s.now(), e.lastRead) {
		return s.deleteLocked(ctx, e, topic)
	}
	e.loaded = true
	return present, nil
}

// gone is the answer to a request on a soft-deleted stream.
func gone() error {
	return refuse(http.StatusGone, "the stream was deleted (its data is kept for its forks)")
}

// remove deletes the stream: a final tombstone on the tail (so that a
// write decided on an older tail conflicts), then a Purge. e.mu is held
// and e is fresh.
func (s *Service) remove(ctx context.Context, e *entry, topic string) error {
	for range maxRetries {
		if !e.st.exists {
			return nil
		}
		if e.st.closed {
			break // finished: nothing can be appended any more
		}
		m := &pubsub.Message{Topics: []string{topic}, Final: true, Meta: map[string]string{metaOp: opDelete}}
		_, err := s.cond.PublishIf(ctx, e.st.tail, m)
		if err == nil {
			break
		}
		if !errors.Is(err, pubsub.ErrConflict) && !errors.Is(err, pubsub.ErrTopicFinished) {
			return fmt.Errorf("streams: delete %s: %w", topic, err)
		}
		if err := s.refresh(ctx, e, topic); err != nil {
			return err
		}
	}
	if err := s.purger.Purge(ctx, topic); err != nil {
		return fmt.Errorf("streams: delete %s: %w", topic, err)
	}
	e.st, e.lastRead = state{}, time.Time{}
	return nil
}

// Info is what a read needs of a stream.
type Info struct {
	Tail        pubsub.Position
	Created     pubsub.Position
	ContentType string
	Closed      bool
	TTL         int64 // -1: none
	ExpiresAt   string
	ForkFrom    string
	ForkAt      Offset // a fork's last inherited offset (Start: none)
	Depth       int    // the segment of the stream's own data (0, or a fork's depth)
}

// TailOffset returns the stream's tail as an offset.
func (in Info) TailOffset() Offset { return Offset{Seg: in.Depth, Pos: in.Tail} }

func (st *state) info() Info {
	return Info{Tail: st.tail, Created: st.created, ContentType: st.contentType, Closed: st.closed, TTL: st.ttl,
		ExpiresAt: st.expiresRaw, ForkFrom: st.forkFrom, ForkAt: st.forkAt, Depth: st.depth}
}

// Stat returns the stream's state. A read (touch) renews its TTL; a HEAD
// does not.
func (s *Service) Stat(ctx context.Context, topic string, touch bool) (Info, error) {
	e := s.entryOf(topic)
	e.mu.Lock()
	defer e.mu.Unlock()
	p, err := s.load(ctx, e, topic)
	switch {
	case err != nil:
		return Info{}, err
	case p == absent:
		return Info{}, errNotFound()
	case p == softDeleted:
		return Info{}, gone()
	}
	if touch {
		e.lastRead = s.now()
	}
	return e.st.info(), nil
}

// Delete deletes the stream.
func (s *Service) Delete(ctx context.Context, topic string) error {
	e := s.entryOf(topic)
	e.mu.Lock()
	defer e.mu.Unlock()
	p, err := s.load(ctx, e, topic)
	switch {
	case err != nil:
		return err
	case p == absent:
		return errNotFound()
	case p == softDeleted:
		return gone()
	}
	_, err = s.deleteLocked(ctx, e, topic)
	return err
}

// createReq is a parsed create (PUT).
type createReq struct {
	contentType string
	ttl         int64 // -1: none
	expiresRaw  string
	expiresAt   time.Time
	closed      bool
	body        string
	forkFrom    string // source topic
	forkAt      Offset
	depth       int
	forkSub     int64
	forkAtGiven bool
	// Set for a fork (fork.go): what the request left out (content type,
	// TTL) is taken from the source, the sub-offset's prefix is put ahead
	// of the body, and the source counts a reference; release undoes the
	// reference when the create fails.
	ctGiven, expiryGiven bool
	resolve              func(*createReq) error
	release              func(context.Context)
}

// createStream creates the stream, or checks that the existing one has the same
// configuration. It reports whether it created it.
func (s *Service) createStream(ctx context.Context, topic string, req createReq) (Info, bool, error) {
	e := s.entryOf(topic)
	e.mu.Lock()
	defer e.mu.Unlock()
	for range maxRetries {
		p, err := s.load(ctx, e, topic)
		switch {
		case err != nil:
			return Info{}, false, err
		case p == softDeleted:
			return Info{}, false, refuse(http.StatusConflict, "a deleted stream whose forks still read it is at this path: it cannot be created again until they are deleted")
		case p == present:
			if !e.st.sameConfig(req) {
				return Info{}, false, refuse(http.StatusConflict, "the stream exists with another configuration (content type, TTL, expiry or fork)")
			}
			return e.st.info(), false, nil
		}
		// A fork takes what it leaves out from its source, on a copy (the
		// loop may decide again).
		req := req
		if req.resolve != nil {
			if err := req.resolve(&req); err != nil {
				return Info{}, false, err
			}
		}
		meta := map[string]string{metaOp: opCreate, metaType: req.contentType}
		if req.ttl >= 0 {
			meta[metaTTL] = strconv.FormatInt(req.ttl, 10)
		}
		if req.expiresRaw != "" {
			meta[metaExpires] = req.expiresAt.Format(time.RFC3339Nano)
		}
		if req.forkFrom != "" {
			meta[metaForkFrom] = req.forkFrom
			if !req.forkAt.IsStart() {
				meta[metaForkAt] = req.forkAt.String()
			}
			meta[metaDepth] = strconv.Itoa(req.depth)
			meta[metaForkSub] = strconv.FormatInt(req.forkSub, 10)
		}
		m := &pubsub.Message{Topics: []string{topic}, Data: req.body, Final: req.closed, Meta: meta}
		_, err = s.cond.PublishIf(ctx, e.st.tail, m)
		if err != nil && req.release != nil {
			req.release(ctx)
		}
		switch {
		case err == nil:
			e.st.apply(m)
			e.lastRead = time.Time{}
			s.notify(topic)
			return e.st.info(), true, nil
		case errors.Is(err, pubsub.ErrTopicFinished):
			// A delete's tombstone whose purge did not happen: finish it.
			if err := s.purger.Purge(ctx, topic); err != nil {
				return Info{}, false, fmt.Errorf("streams: create %s: %w", topic, err)
			}
		case !errors.Is(err, pubsub.ErrConflict):
			return Info{}, false, fmt.Errorf("streams: create %s: %w", topic, err)
		}
	}
	return Info{}, false, fmt.Errorf("streams: create %s: too many conflicting writes", topic)
}

// appendReq is a parsed append (POST).
type appendReq struct {
	contentType string // the request's, "" when absent
	body        string // JSON mode: the flattened units
	close       bool
	producer    string // "" without producer headers
	epoch, seq  int64
	streamSeq   string
	hasSeq      bool
}

// appendRes is an append's outcome.
type appendRes struct {
	status     int // 200 (a producer's new data), 204
	tail       Offset
	closed     bool
	producer   bool
	epoch, seq int64
}

// appendTo appends to the stream (and closes it with req.close), deciding on
// the log's state: producer fencing and sequence, Stream-Seq, content type,
// closure.
func (s *Service) appendTo(ctx context.Context, topic string, req appendReq) (appendRes, error) {
	e := s.entryOf(topic)
	e.mu.Lock()
	defer e.mu.Unlock()
	// Optimistic first try: a stream this node has loaded is appended to
	// on its cached tail at once. Every change to a stream (another
	// node's append, a close, a delete, a soft delete of an open stream)
	// moves its tail, so the append conflicts if the cache is stale, and
	// the next try reads the log first. A refusal or a duplicate is only
	// ever answered from a state just read from the log.
	optimistic := e.loaded && e.st.exists && !e.st.soft && !e.refs.soft && !e.st.expired(s.now(), e.lastRead)
	for try := range maxRetries {
		fresh := try > 0 || !optimistic
		if fresh {
			p, err := s.load(ctx, e, topic)
			switch {
			case err != nil:
				return appendRes{}, err
			case p == absent:
				return appendRes{}, errNotFound()
			case p == softDeleted:
				return appendRes{}, gone()
			}
		}
		res, m, err := decide(&e.st, topic, req)
		if err != nil || m == nil {
			if !fresh {
				continue // decide again on the log's state
			}
			return res, err
		}
		_, err = s.cond.PublishIf(ctx, e.st.tail, m)
		switch {
		case err == nil:
			e.st.apply(m)
			res.tail, res.closed = Offset{Seg: e.st.depth, Pos: e.st.tail}, e.st.closed
			s.notify(topic)
			return res, nil
		case !errors.Is(err, pubsub.ErrConflict) && !errors.Is(err, pubsub.ErrTopicFinished):
			return appendRes{}, fmt.Errorf("streams: append %s: %w", topic, err)
		}
		// Another node wrote first: read what it wrote and decide again.
	}
	return appendRes{}, fmt.Errorf("streams: append %s: too many conflicting writes", topic)
}

// decide applies the protocol's rules for req to st: a refusal, an
// idempotent success with nothing to append (m nil), or the message to
// append on st.tail.
func decide(st *state, topic string, req appendReq) (appendRes, *pubsub.Message, error) {
	res := appendRes{status: http.StatusNoContent, tail: Offset{Seg: st.depth, Pos: st.tail}, closed: st.closed}
	offset := Offset{Seg: st.depth, Pos: st.tail}.String()
	if req.producer != "" {
		res.producer, res.epoch, res.seq = true, req.epoch, req.seq
		p, known := st.producers[req.producer]
		switch {
		case known && req.epoch < p.epoch:
			return res, nil, refuse(http.StatusForbidden, "stale producer epoch %d: the producer is at epoch %d", req.epoch, p.epoch).
				with("Producer-Epoch", strconv.FormatInt(p.epoch, 10))
		case (!known || req.epoch > p.epoch) && req.seq != 0:
			return res, nil, refuse(http.StatusBadRequest, "a new producer epoch must start at Producer-Seq 0 (got %d)", req.seq)
		case known && req.epoch == p.epoch && req.seq <= p.seq:
			// A retry of an append that is in the log already.
			res.seq = p.seq
			return res, nil, nil
		case known && req.epoch == p.epoch && req.seq > p.seq+1:
			return res, nil, refuse(http.StatusConflict, "producer sequence gap: expected %d, got %d", p.seq+1, req.seq).
				with("Producer-Expected-Seq", strconv.FormatInt(p.seq+1, 10)).with("Producer-Received-Seq", strconv.FormatInt(req.seq, 10))
		}
	}
	if st.closed {
		if req.close && req.body == "" && req.producer == "" {
			return res, nil, nil // closing a closed stream
		}
		return res, nil, refuse(http.StatusConflict, "the stream is closed").with("Stream-Closed", "true").with("Stream-Next-Offset", offset)
	}
	if req.body != "" && mediaType(req.contentType) != mediaType(st.contentType) {
		return res, nil, refuse(http.StatusConflict, "content type %q does not match the stream's %q", clipStr(req.contentType), st.contentType)
	}
	if req.hasSeq && st.hasLastSeq && req.streamSeq <= st.lastSeq {
		return res, nil, refuse(http.StatusConflict, "Stream-Seq %q is not after the last one, %q", clipStr(req.streamSeq), clipStr(st.lastSeq))
	}
	meta := map[string]string{metaOp: opAppend}
	if req.producer != "" {
		meta[metaProducer] = req.producer
		meta[metaEpoch] = strconv.FormatInt(req.epoch, 10)
		meta[metaSeq] = strconv.FormatInt(req.seq, 10)
		if req.body != "" {
			res.status = http.StatusOK
		}
	}
	if req.hasSeq {
		meta[metaStreamSeq] = req.streamSeq
	}
	return res, &pubsub.Message{Topics: []string{topic}, Data: req.body, Final: req.close, Meta: meta}, nil
}

func clipStr(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Read returns the stream's messages after the position after, in order,
// until about maxBytes of data (at least one message), and whether it
// reached the tail. The messages are the broker's, shared: never modify
// them. It asks the broker for pages sized by the messages seen so far, so
// that a store that decodes what it reads (bolt, Redis, NATS) reads little
// more than it returns.
func (s *Service) Read(ctx context.Context, topic string, after pubsub.Position, maxBytes int) ([]*pubsub.Message, bool, error) {
	const maxPage = 1024
	var out []*pubsub.Message
	size, page := 0, 1
	for {
		msgs, tail, err := s.cond.ReadTopic(ctx, topic, after, page)
		if err != nil {
			return nil, false, fmt.Errorf("streams: read %s: %w", topic, err)
		}
		for _, m := range msgs {
			if len(out) > 0 && size+len(m.Data) > maxBytes {
				return out, false, nil
			}
			out = append(out, m)
			size += len(m.Data)
			after = m.Pos
		}
		if len(msgs) < page || after == tail || size >= maxBytes {
			return out, len(msgs) < page || after == tail, nil
		}
		// The next page: what the rest of the budget holds at the mean
		// size so far.
		page = maxPage
		if mean := size / len(out); mean > 0 {
			page = min(maxPage, max(1, (maxBytes-size)/mean))
		}
	}
}

// Sweep deletes the cached streams whose TTL or expiry has passed, and
// forgets the entries of streams that are gone. Only a stream that its
// cache says has expired is read again from the log (another node's
// writes may have renewed it), so a sweep costs the broker nothing for
// streams without a TTL.
func (s *Service) Sweep(ctx context.Context) {
	s.mu.Lock()
	topics := make([]string, 0, len(s.streams))
	for t := range s.streams {
		topics = append(topics, t)
	}
	s.mu.Unlock()
	now := s.now()
	for _, t := range topics {
		e := s.entryOf(t)
		e.mu.Lock()
		gone := !e.st.exists
		if e.st.exists && e.st.expired(now, e.lastRead) {
			p, err := s.load(ctx, e, t)
			if err != nil {
				s.log.Warn("streams: sweep", "stream", t, "err", err)
			}
			gone = p == absent && err == nil
		}
		if gone {
			s.mu.Lock()
			if s.streams[t] == e {
				delete(s.streams, t)
			}
			s.mu.Unlock()
		}
		e.mu.Unlock()
	}
}

// Run sweeps expired streams every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Sweep(ctx)
		}
	}
}
