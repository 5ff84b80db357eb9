package dssub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/heraldpush/herald/pubsub"
)

// Topics of the subscriptions' state on the streams broker.
const (
	subPrefix  = "ds-sub/"            // + id: a subscription's log
	indexTopic = "ds-sub-index/all"   // the ids of the subscriptions
	keyTopic   = "ds-sub-key/ed25519" // the cluster's signing key
	maxRetries = 100                  // decisions again after conflicts
	metaOp     = "ds.sub-op"          // index records: "put" or "del"
	metaID     = "ds.sub-id"
	metaSeg    = "ds.sub-seg" // root records: the current segment
)

// Namespaces returns the topic prefixes the subscriptions' state lives
// under, for the access policy to reserve.
func Namespaces() []string { return []string{subPrefix, "ds-sub-index/", "ds-sub-key/"} }

// Topic returns the topic of the subscription id: tokens name a
// subscription by it (managing it is a publish on it).
func Topic(id string) string { return subPrefix + id }

// subLog is this node's cache of one subscription's log. mu serialises
// this node's changes to it and guards the fields.
//
// The log is a chain of segments, so that it does not grow without
// bound: "ds-sub/<id>" holds pointer records (the current segment's
// number, appended at each rotation), and segment k is the topic
// "ds-sub/<id>/<k>". A writer that finds the current segment holding
// RotateEvery records appends its change as the segment's final message
// (PublishIf: concurrent writers conflict, then follow), writes the same
// state as segment k+1's first record, points the root at k+1 and purges
// segment k-1. A reader follows a finished segment to the next one, and
// re-reads the root when its segment was purged under it or is empty; a
// segment that is still empty carries the previous segment's final state.
// Purging a segment resets its tail, so a writer that read it empty could
// append to it after the purge: the root check before deciding on an empty
// segment, and the purge one rotation late, put two whole rotations
// (2 × RotateEvery changes) between such a writer's check and its append.
type subLog struct {
	mu   sync.Mutex
	seg  int             // the current segment
	tail pubsub.Position // the position read up to in it
	n    int             // records read in it
	done bool            // the segment is finished (its final record read)
	cur  *sub            // the newest record; nil when the log is empty
}

// segTopic is segment k of subscription id's log.
func segTopic(id string, k int) string { return Topic(id) + "/" + strconv.Itoa(k) }

// logOf returns id's cache entry, creating it.
func (m *Manager) logOf(id string) *subLog {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.logs[id]
	if l == nil {
		l = &subLog{seg: -1}
		m.logs[id] = l
	}
	return l
}

// pointer returns the newest segment the root of id's log points to (0:
// none).
func (m *Manager) pointer(ctx context.Context, id string) (int, error) {
	msgs, _, err := m.cond.ReadTopic(ctx, Topic(id), pubsub.Position{}, 0)
	if err != nil {
		return 0, fmt.Errorf("dssub: read %s: %w", Topic(id), err)
	}
	k := 0
	for _, msg := range msgs {
		if n, err := strconv.Atoi(msg.Meta[metaSeg]); err == nil && n > k {
			k = n
		}
	}
	return k, nil
}

// refresh brings l up to the newest record of subscription id's log. l.mu
// is held.
func (m *Manager) refresh(ctx context.Context, l *subLog, id string) error {
	if l.seg < 0 {
		k, err := m.pointer(ctx, id)
		if err != nil {
			return err
		}
		l.seg, l.tail, l.n, l.done, l.cur = k, pubsub.Position{}, 0, false, nil
	}
	for range maxRetries {
		topic := segTopic(id, l.seg)
		msgs, tail, err := m.cond.ReadTopic(ctx, topic, l.tail, 0)
		gone := errors.Is(err, pubsub.ErrEpochChanged) || err == nil && len(msgs) == 0 && tail != l.tail
		if gone {
			// Purged under us (rotated): the root points further.
			k, perr := m.pointer(ctx, id)
			if perr != nil {
				return perr
			}
			if k <= l.seg {
				// Not rotated: the segment was purged otherwise; read it
				// again from its start.
				k = l.seg
			}
			l.seg, l.tail, l.n, l.done = k, pubsub.Position{}, 0, false
			topic = segTopic(id, k)
			msgs, tail, err = m.cond.ReadTopic(ctx, topic, pubsub.Position{}, 0)
		}
		if err != nil {
			return fmt.Errorf("dssub: read %s: %w", topic, err)
		}
		if len(msgs) > 0 {
			last := msgs[len(msgs)-1]
			var s sub
			if err := json.Unmarshal([]byte(last.Data), &s); err != nil {
				return fmt.Errorf("dssub: %s: a malformed record: %w", topic, err)
			}
			l.cur, l.n, l.done = &s, l.n+len(msgs), last.Final
		}
		l.tail = tail
		if l.tail.IsZero() && !l.done {
			// An empty segment: not yet written, or purged (a purged
			// topic's tail is zero again). The root tells.
			k, err := m.pointer(ctx, id)
			if err != nil {
				return err
			}
			if k > l.seg {
				l.seg, l.tail, l.n, l.done = k, pubsub.Position{}, 0, false
				continue
			}
		}
		if !l.done {
			return nil
		}
		// Finished: its final state carries over to the next segment.
		l.seg, l.tail, l.n, l.done = l.seg+1, pubsub.Position{}, 0, false
	}
	return fmt.Errorf("dssub: read the log of %s: too many segments", id)
}

// forget drops l, id's cache entry, when the subscription is not there:
// asking for ids that name nothing (a GET, a DELETE, a deleted
// subscription's sweep) must not grow the cache. A change in flight on l
// stays safe: the broker's PublishIf orders it with a change made through
// a new entry, as it orders two nodes' changes.
func (m *Manager) forget(id string, l *subLog) {
	m.mu.Lock()
	if m.logs[id] == l {
		delete(m.logs, id)
	}
	m.mu.Unlock()
}

// load returns the subscription's state, read from the broker (nil when
// there is none, or it was deleted).
func (m *Manager) load(ctx context.Context, id string) (*sub, error) {
	l := m.logOf(id)
	s, err := m.loadLog(ctx, l, id)
	if s == nil {
		m.forget(id, l)
	}
	return s, err
}

func (m *Manager) loadLog(ctx context.Context, l *subLog, id string) (*sub, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := m.refresh(ctx, l, id); err != nil {
		return nil, err
	}
	if l.cur == nil || l.cur.Deleted {
		return nil, nil
	}
	return l.cur.clone(), nil
}

// update decides a change of the subscription on its newest state and
// appends it on the tail it read: fn gets a copy of the state (nil when
// there is none or it was deleted) and returns the new state, or nil for
// no change. On a conflict (another node changed it first) it reads again
// and fn decides again. It returns the state and whether it wrote it.
func (m *Manager) update(ctx context.Context, id string, fn func(cur *sub) (*sub, error)) (*sub, bool, error) {
	l := m.logOf(id)
	s, wrote, err := m.updateLog(ctx, l, id, fn)
	if s == nil && !wrote {
		m.forget(id, l)
	}
	return s, wrote, err
}

func (m *Manager) updateLog(ctx context.Context, l *subLog, id string, fn func(cur *sub) (*sub, error)) (*sub, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range maxRetries {
		if err := m.refresh(ctx, l, id); err != nil {
			return nil, false, err
		}
		var cur *sub
		if l.cur != nil && !l.cur.Deleted {
			cur = l.cur.clone()
		}
		next, err := fn(cur)
		if err != nil || next == nil {
			return cur, false, err
		}
		data, err := json.Marshal(next)
		if err != nil {
			return nil, false, fmt.Errorf("dssub: encode %s: %w", Topic(id), err)
		}
		topic := segTopic(id, l.seg)
		rotate := l.n+1 >= m.o.RotateEvery
		_, err = m.cond.PublishIf(ctx, l.tail, &pubsub.Message{Topics: []string{topic}, Data: string(data), Final: rotate})
		switch {
		case err == nil:
			if rotate {
				m.rotate(ctx, id, l.seg, string(data))
			}
			// The next refresh reads the record back (and its position).
			return next.clone(), true, nil
		case !errors.Is(err, pubsub.ErrConflict) && !errors.Is(err, pubsub.ErrTopicFinished):
			return nil, false, fmt.Errorf("dssub: write %s: %w", topic, err)
		}
	}
	return nil, false, fmt.Errorf("dssub: write %s: too many conflicting writes", Topic(id))
}

// rotate follows the final record (data) written on segment k: the same
// state as segment k+1's first record (unless a writer that followed the
// final one was first), the root pointed at k+1, segment k-1 purged. A
// failure leaves a state readers still follow (a finished segment leads to
// the next).
func (m *Manager) rotate(ctx context.Context, id string, k int, data string) {
	next := segTopic(id, k+1)
	if _, err := m.cond.PublishIf(ctx, pubsub.Position{}, &pubsub.Message{Topics: []string{next}, Data: data}); err != nil && !errors.Is(err, pubsub.ErrConflict) {
		m.log.Warn("dssub: rotate the log", "subscription", id, "err", err)
		return
	}
	if _, err := m.broker.Publish(ctx, &pubsub.Message{Topics: []string{Topic(id)}, Meta: map[string]string{metaSeg: strconv.Itoa(k + 1)}}); err != nil {
		m.log.Warn("dssub: rotate the log", "subscription", id, "err", err)
		return
	}
	// Segment k-1 is purged, not k: a writer that read k empty and has
	// not written yet checks the root first (refresh); purging one
	// rotation late keeps a whole rotation between that check and the
	// purge.
	if m.purger != nil && k > 0 {
		if err := m.purger.Purge(ctx, segTopic(id, k-1)); err != nil {
			m.log.Warn("dssub: rotate the log", "subscription", id, "err", err)
		}
	}
}

// index is this node's cache of the index topic.
type index struct {
	tail pubsub.Position
	ids  map[string]bool
}

// refreshIndex brings the index up to its topic and returns the ids.
func (m *Manager) refreshIndex(ctx context.Context) ([]string, error) {
	m.idxMu.Lock()
	defer m.idxMu.Unlock()
	msgs, tail, err := m.cond.ReadTopic(ctx, indexTopic, m.idx.tail, 0)
	if errors.Is(err, pubsub.ErrEpochChanged) {
		m.idx = index{}
		msgs, tail, err = m.cond.ReadTopic(ctx, indexTopic, pubsub.Position{}, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("dssub: read %s: %w", indexTopic, err)
	}
	if m.idx.ids == nil {
		m.idx.ids = make(map[string]bool)
	}
	for _, msg := range msgs {
		switch msg.Meta[metaOp] {
		case "put":
			m.idx.ids[msg.Meta[metaID]] = true
		case "del":
			delete(m.idx.ids, msg.Meta[metaID])
		}
	}
	m.idx.tail = tail
	ids := make([]string, 0, len(m.idx.ids))
	for id := range m.idx.ids {
		ids = append(ids, id)
	}
	return ids, nil
}

// indexPut records id in the index unless it is there.
func (m *Manager) indexPut(ctx context.Context, id string) error {
	ids, err := m.refreshIndex(ctx)
	if err != nil {
		return err
	}
	for _, x := range ids {
		if x == id {
			return nil
		}
	}
	return m.indexWrite(ctx, "put", id)
}

func (m *Manager) indexWrite(ctx context.Context, op, id string) error {
	_, err := m.broker.Publish(ctx, &pubsub.Message{Topics: []string{indexTopic}, Meta: map[string]string{metaOp: op, metaID: id}})
	if err != nil {
		return fmt.Errorf("dssub: write %s: %w", indexTopic, err)
	}
	return nil
}
