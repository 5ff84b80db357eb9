// Package journal records, in the broker, the work a node is running (chat
// generations, demo tasks), so that when the node starts again after a
// crash it can end that work's streams with an "interrupted" final event
// instead of leaving them open forever.
//
// A node's journal is the retained, private message of the topic
// "herald/journal/<node>": a JSON list of the items running. Add writes the
// list before the work starts (so a crash right after cannot lose it),
// Done after it ended; writes are coalesced. Open, when the node starts,
// reads what the previous run left, hands each item to the handler of its
// kind, and writes the list afresh.
//
// A node's name must be stable across restarts and unique among the nodes
// sharing a broker (--node-id): a node that starts under the name of a
// live one would end that node's work.
package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
)

// TopicPrefix starts the topic of every node's journal.
const TopicPrefix = "herald/journal/"

// EventType is the event type of a journal's messages.
const EventType = "herald.journal"

// Item is one piece of work running.
type Item struct {
	// Kind names the feature that runs it ("chat", "demo").
	Kind string `json:"kind"`
	// ID identifies it within its kind.
	ID string `json:"id"`
	// Data is what its kind needs to end it (optional).
	Data json.RawMessage `json:"data,omitempty"`
	// Started is when it was added.
	Started time.Time `json:"started"`
}

// Handler ends the items of one kind that a previous run left running.
type Handler func(ctx context.Context, items []Item)

// record is a journal message's data.
type record struct {
	Node  string `json:"node"`
	Items []Item `json:"items"`
}

// Journal is one node's journal. Create it with New, register the kinds'
// handlers, Open it, and Close it when the node stops. A nil *Journal
// records nothing (a broker that keeps nothing across restarts needs no
// journal). Its methods are safe for concurrent use.
//
// Lock order: Journal.mu, then nothing; writes happen without it.
type Journal struct {
	hub   *hub.Hub
	node  string
	topic string
	log   *slog.Logger

	mu       sync.Mutex
	handlers map[string]Handler
	items    map[string]Item // by kind + "\x00" + id
	version  uint64          // of items
	written  uint64          // version last stored
	writing  bool
	open     bool
	err      error         // of the last write
	failing  bool          // the last write failed (logged once)
	changed  chan struct{} // closed and replaced after each write
}

// New returns the journal of node, stored through h.
func New(h *hub.Hub, node string, log *slog.Logger) (*Journal, error) {
	topic := TopicPrefix + node
	if node == "" {
		return nil, errors.New("journal: empty node name")
	}
	if err := hub.ValidateTopic(topic); err != nil {
		return nil, fmt.Errorf("journal: node name %q: %w", node, err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Journal{hub: h, node: node, topic: topic, log: log, handlers: make(map[string]Handler),
		items: make(map[string]Item), changed: make(chan struct{})}, nil
}

// Node returns the node's name.
func (j *Journal) Node() string {
	if j == nil {
		return ""
	}
	return j.node
}

// Handle registers the handler of kind's leftover items. Call it before
// Open.
func (j *Journal) Handle(kind string, h Handler) {
	if j == nil {
		return
	}
	j.mu.Lock()
	j.handlers[kind] = h
	j.mu.Unlock()
}

// Open reads what the previous run of the node left running, hands it to
// the kinds' handlers, and stores the journal afresh (with what was added
// meanwhile). It returns the leftover items.
func (j *Journal) Open(ctx context.Context) ([]Item, error) {
	if j == nil {
		return nil, nil
	}
	snap, err := j.hub.Broker().Read(ctx, pubsub.Query{Topics: []string{j.topic}})
	if err != nil {
		return nil, fmt.Errorf("journal: read %s: %w", j.topic, err)
	}
	var left []Item
	for _, m := range snap.Retained {
		var rec record
		if err := json.Unmarshal([]byte(m.Data), &rec); err != nil {
			j.log.Warn("journal: unreadable; ignoring it", "topic", j.topic, "err", err)
			continue
		}
		left = rec.Items
	}
	byKind := make(map[string][]Item)
	for _, it := range left {
		byKind[it.Kind] = append(byKind[it.Kind], it)
	}
	j.mu.Lock()
	handlers := make(map[string]Handler, len(j.handlers))
	for k, h := range j.handlers {
		handlers[k] = h
	}
	j.mu.Unlock()
	for _, kind := range slices.Sorted(maps.Keys(byKind)) {
		h := handlers[kind]
		if h == nil {
			j.log.Warn("journal: work of an unknown kind was interrupted; nothing ends it", "kind", kind, "items", len(byKind[kind]))
			continue
		}
		h(ctx, byKind[kind])
	}
	j.mu.Lock()
	j.open = true
	j.version++
	v := j.version
	j.mu.Unlock()
	return left, j.wait(ctx, v)
}

// Add records it as running, and returns once the journal holding it is
// stored (or with the error that prevented it).
func (j *Journal) Add(ctx context.Context, it Item) error {
	if j == nil {
		return nil
	}
	if it.Started.IsZero() {
		it.Started = time.Now().UTC()
	}
	j.mu.Lock()
	j.items[it.Kind+"\x00"+it.ID] = it
	j.version++
	v := j.version
	j.mu.Unlock()
	return j.wait(ctx, v)
}

// Done records that the item of kind and id ended; the journal is stored
// again shortly (Done does not wait).
func (j *Journal) Done(kind, id string) {
	if j == nil {
		return
	}
	j.mu.Lock()
	delete(j.items, kind+"\x00"+id)
	j.version++
	v := j.version
	j.mu.Unlock()
	j.kick(v)
}

// Close stores the journal as it stands (what still runs will be ended by
// the next start) and waits for it until ctx ends.
func (j *Journal) Close(ctx context.Context) error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	v := j.version
	j.mu.Unlock()
	return j.wait(ctx, v)
}

// wait stores the journal if version v is not stored yet, and waits until
// it is.
func (j *Journal) wait(ctx context.Context, v uint64) error {
	j.kick(v)
	for {
		j.mu.Lock()
		written, err, ch, open := j.written, j.err, j.changed, j.open
		j.mu.Unlock()
		if written >= v || !open {
			return nil
		}
		if err != nil && !j.pending() {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("journal: store: %w", ctx.Err())
		}
	}
}

// pending reports whether a write is going on.
func (j *Journal) pending() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.writing
}

// kick starts a writer unless one runs; it stores the newest version
// until none is left to store. Before Open nothing is stored (the previous
// run's journal must be read first).
func (j *Journal) kick(v uint64) {
	j.mu.Lock()
	if j.writing || !j.open || j.written >= v {
		j.mu.Unlock()
		return
	}
	j.writing = true
	j.mu.Unlock()
	go j.writer()
}

func (j *Journal) writer() {
	for {
		j.mu.Lock()
		if j.written >= j.version {
			j.writing = false
			j.mu.Unlock()
			return
		}
		v := j.version
		rec := record{Node: j.node, Items: make([]Item, 0, len(j.items))}
		for _, it := range j.items {
			rec.Items = append(rec.Items, it)
		}
		j.mu.Unlock()
		slices.SortFunc(rec.Items, func(a, b Item) int { return a.Started.Compare(b.Started) })
		data, _ := json.Marshal(rec)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := j.hub.Publish(ctx, &pubsub.Message{Topics: []string{j.topic}, Type: EventType, Data: string(data), Retain: true, Private: true})
		cancel()
		j.mu.Lock()
		j.err = err
		switch {
		case err == nil:
			j.written = max(j.written, v)
			if j.failing {
				j.log.Info("journal: stored again", "topic", j.topic)
				j.failing = false
			}
		default:
			if !j.failing {
				j.log.Warn("journal: cannot store the running work (a crash now would leave it unfinished)", "topic", j.topic, "err", err)
				j.failing = true
			}
			j.writing = false
		}
		close(j.changed)
		j.changed = make(chan struct{})
		j.mu.Unlock()
		if err != nil {
			return
		}
	}
}
