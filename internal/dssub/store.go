package dssub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
)

// Namespaces returns the topic prefixes the subscriptions' state lives
// under, for the access policy to reserve.
func Namespaces() []string { return []string{subPrefix, "ds-sub-index/", "ds-sub-key/"} }

// Topic returns the topic of the subscription id: tokens name a
// subscription by it (managing it is a publish on it).
func Topic(id string) string { return subPrefix + id }

// subLog is this node's cache of one subscription's log. mu serialises
// this node's changes to it and guards the fields.
type subLog struct {
	mu   sync.Mutex
	tail pubsub.Position
	cur  *sub // the newest record; nil when the log is empty
}

// logOf returns id's cache entry, creating it.
func (m *Manager) logOf(id string) *subLog {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.logs[id]
	if l == nil {
		l = &subLog{}
		m.logs[id] = l
	}
	return l
}

// refresh brings l up to the log of topic (from scratch when its epoch
// changed). l.mu is held.
func (m *Manager) refresh(ctx context.Context, l *subLog, topic string) error {
	msgs, tail, err := m.cond.ReadTopic(ctx, topic, l.tail, 0)
	if errors.Is(err, pubsub.ErrEpochChanged) {
		l.tail, l.cur = pubsub.Position{}, nil
		msgs, tail, err = m.cond.ReadTopic(ctx, topic, pubsub.Position{}, 0)
	}
	if err != nil {
		return fmt.Errorf("dssub: read %s: %w", topic, err)
	}
	if len(msgs) > 0 {
		var s sub
		if err := json.Unmarshal([]byte(msgs[len(msgs)-1].Data), &s); err != nil {
			return fmt.Errorf("dssub: %s: a malformed record: %w", topic, err)
		}
		l.cur = &s
	}
	l.tail = tail
	return nil
}

// load returns the subscription's state, read from the broker (nil when
// there is none, or it was deleted).
func (m *Manager) load(ctx context.Context, id string) (*sub, error) {
	l := m.logOf(id)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := m.refresh(ctx, l, Topic(id)); err != nil {
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
	l.mu.Lock()
	defer l.mu.Unlock()
	topic := Topic(id)
	for range maxRetries {
		if err := m.refresh(ctx, l, topic); err != nil {
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
			return nil, false, fmt.Errorf("dssub: encode %s: %w", topic, err)
		}
		_, err = m.cond.PublishIf(ctx, l.tail, &pubsub.Message{Topics: []string{topic}, Data: string(data)})
		switch {
		case err == nil:
			// The next refresh reads the record back (and its position).
			return next.clone(), true, nil
		case !errors.Is(err, pubsub.ErrConflict):
			return nil, false, fmt.Errorf("dssub: write %s: %w", topic, err)
		}
	}
	return nil, false, fmt.Errorf("dssub: write %s: too many conflicting writes", topic)
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
