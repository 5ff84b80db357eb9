package mercure

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
)

// index maps publisher-chosen event ids to the positions of their updates,
// so that a subscriber resuming from such an id resumes exactly. An id may
// be reused (as the reference hub allows): the index keeps the position of
// its latest update, and resuming from the id resumes after that one, as
// the reference hub's history does (it looks for the id from the newest
// update back). It holds at most max ids, forgetting the least recently
// published first; a forgotten id resumes like any unknown id (a
// herald.reset, then what history has). It is fed by the publish handler
// on this node and by a follower that reads HubTopic from the broker
// (updates published on other nodes, and history at start).
type index struct {
	mu  sync.Mutex
	max int
	ids map[string]indexed
	// order lists ids by their latest publish, oldest first, for
	// eviction; order[head:] are live. An id reused leaves a stale entry
	// behind (its seq is not the id's any more), skipped and compacted.
	order []orderEntry
	head  int
	next  uint64          // seq of the next entry
	seen  pubsub.Position // the follower's position in HubTopic
}

type indexed struct {
	pos pubsub.Position
	seq uint64 // of the id's entry in order
}

type orderEntry struct {
	id  string
	seq uint64
}

func newIndex(max int) *index {
	if max <= 0 {
		max = 100000
	}
	return &index{max: max, ids: make(map[string]indexed)}
}

// put records that id names the update at pos.
func (x *index) put(id string, pos pubsub.Position) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.putLocked(id, pos)
}

// putLocked records id at pos unless the index already has a later update
// of id (the follower reads an update after the publish handler put it,
// and may read older ones after newer).
func (x *index) putLocked(id string, pos pubsub.Position) {
	if old, ok := x.ids[id]; ok && old.pos.Epoch == pos.Epoch && old.pos.Offset >= pos.Offset {
		return
	}
	x.ids[id] = indexed{pos: pos, seq: x.next}
	x.order = append(x.order, orderEntry{id, x.next})
	x.next++
	for len(x.ids) > x.max && x.head < len(x.order) {
		e := x.order[x.head]
		if cur, ok := x.ids[e.id]; ok && cur.seq == e.seq {
			delete(x.ids, e.id)
		}
		x.order[x.head] = orderEntry{}
		x.head++
	}
	if live := len(x.order) - x.head; live > 2*len(x.ids)+1024 {
		// Mostly stale entries (ids reused): keep the live ones.
		kept := make([]orderEntry, 0, len(x.ids))
		for _, e := range x.order[x.head:] {
			if cur, ok := x.ids[e.id]; ok && cur.seq == e.seq {
				kept = append(kept, e)
			}
		}
		x.order, x.head = kept, 0
	} else if x.head > len(x.order)/2 && x.head > 1024 {
		x.order = append([]orderEntry(nil), x.order[x.head:]...)
		x.head = 0
	}
}

// get returns the position of id.
func (x *index) get(id string) (pubsub.Position, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e, ok := x.ids[id]
	return e.pos, ok
}

// clear forgets every id: the log's epoch changed.
func (x *index) clear() {
	x.mu.Lock()
	defer x.mu.Unlock()
	clear(x.ids)
	x.order, x.head = nil, 0
	x.seen = pubsub.Position{}
}

// advance records that the follower has seen HubTopic up to pos.
func (x *index) advance(pos pubsub.Position) {
	x.mu.Lock()
	if pos.Epoch != x.seen.Epoch || pos.Offset > x.seen.Offset {
		x.seen = pos
	}
	x.mu.Unlock()
}

func (x *index) len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.ids)
}

// lookup returns the position of id. When the index does not know id, it
// first reads from the broker what HubTopic holds beyond the follower's
// position: an update published on another node a moment ago may not have
// reached the follower yet.
func (x *index) lookup(ctx context.Context, b pubsub.Broker, id string) (pubsub.Position, bool) {
	if p, ok := x.get(id); ok {
		return p, true
	}
	b = pubsub.LogOf(b, HubTopic)
	x.mu.Lock()
	after := x.seen
	x.mu.Unlock()
	if after.Epoch != b.Epoch() {
		after = pubsub.Position{Epoch: b.Epoch()}
	}
	snap, err := b.Read(ctx, pubsub.Query{Topics: []string{HubTopic}, After: &after})
	if err != nil {
		return pubsub.Position{}, false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, m := range snap.Events {
		if pid := publisherID(m); pid != "" {
			x.putLocked(pid, m.Pos)
		}
	}
	e, ok := x.ids[id]
	return e.pos, ok
}

// follow feeds the index from the broker: it follows HubTopic from the
// beginning of the current epoch's history (so that ids published before
// this node started resolve too), then live, resubscribing exactly where
// it stood when its subscription ends (slow consumer, epoch change). It
// returns when ctx ends or the hub closes.
func (x *index) follow(ctx context.Context, h *hub.Hub, log *slog.Logger) {
	last := pubsub.Position{Epoch: pubsub.LogOf(h.Broker(), HubTopic).Epoch()}.String()
	withID := func(m *pubsub.Message) bool { return publisherID(m) != "" }
	var batch []*hub.Event
	failing := false
	for ctx.Err() == nil {
		sub, err := h.Subscribe(ctx, hub.Request{Topics: []string{HubTopic}, LastEventID: last, Match: withID, Internal: true})
		if err != nil {
			if errors.Is(err, hub.ErrClosed) || ctx.Err() != nil {
				return
			}
			if !failing {
				log.Warn("mercure: cannot follow the log for publishers' ids; retrying every second", "err", err)
				failing = true
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		if failing {
			log.Info("mercure: following the log for publishers' ids again")
			failing = false
		}
		open := true
		for open {
			select {
			case <-ctx.Done():
				sub.Close()
				return
			case <-sub.Ready():
			}
			batch, open = sub.Pop(batch[:0])
			for _, ev := range batch {
				switch ev.Kind {
				case hub.KindReset:
					if ev.Reset.Reason != hub.ReasonTruncated {
						x.clear()
					}
				case hub.KindMessage:
					if pid := publisherID(ev.Msg); pid != "" {
						x.put(pid, ev.Msg.Pos)
					}
					x.advance(ev.Msg.Pos)
					last = ev.ID()
				case hub.KindPosition:
					x.advance(ev.Pos)
					last = ev.ID()
				}
			}
			clear(batch)
		}
		err = sub.Err()
		sub.Close()
		switch {
		case errors.Is(err, hub.ErrClosed):
			return
		case errors.Is(err, hub.ErrEpochChanged):
			x.clear()
		}
	}
}
