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
// so that a subscriber resuming from such an id resumes exactly. It holds
// at most max ids, forgetting the oldest first; a forgotten id resumes like
// any unknown id (a herald.reset, then what history has). It is fed by the
// publish handler on this node and by a follower that reads HubTopic from
// the broker (updates published on other nodes, and history at start).
type index struct {
	mu      sync.Mutex
	max     int
	ids     map[string]pubsub.Position
	pending map[string]bool
	order   []string // insertion order, for eviction; order[head:] are live
	head    int
	seen    pubsub.Position // the follower's position in HubTopic

	// ready is closed once the follower has read the history that was in
	// the log when it started.
	ready     chan struct{}
	readyOnce sync.Once
}

func newIndex(max int) *index {
	if max <= 0 {
		max = 100000
	}
	return &index{max: max, ids: make(map[string]pubsub.Position), pending: make(map[string]bool), ready: make(chan struct{})}
}

// waitReady returns once the follower has indexed the history the log had
// when it started (so that an id published before this node started is
// known), or after timeout, or when ctx ends.
func (x *index) waitReady(ctx context.Context, timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-x.ready:
	case <-t.C:
	case <-ctx.Done():
	}
}

// reserve claims id for a publish in progress. It reports false when id is
// already known or being published.
func (x *index) reserve(id string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.ids[id]; ok || x.pending[id] {
		return false
	}
	x.pending[id] = true
	return true
}

// release gives up a reservation whose publish failed.
func (x *index) release(id string) {
	x.mu.Lock()
	delete(x.pending, id)
	x.mu.Unlock()
}

// put records that id names the update at pos.
func (x *index) put(id string, pos pubsub.Position) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.putLocked(id, pos)
}

func (x *index) putLocked(id string, pos pubsub.Position) {
	delete(x.pending, id)
	if old, ok := x.ids[id]; ok {
		if old.Epoch == pos.Epoch && old.Offset >= pos.Offset {
			return
		}
		x.ids[id] = pos // a newer update reused the id: the newest wins
		return
	}
	x.ids[id] = pos
	x.order = append(x.order, id)
	for len(x.ids) > x.max && x.head < len(x.order) {
		delete(x.ids, x.order[x.head])
		x.order[x.head] = ""
		x.head++
	}
	if x.head > len(x.order)/2 && x.head > 1024 {
		x.order = append([]string(nil), x.order[x.head:]...)
		x.head = 0
	}
}

// get returns the position of id.
func (x *index) get(id string) (pubsub.Position, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p, ok := x.ids[id]
	return p, ok
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
	p, ok := x.ids[id]
	return p, ok
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
			// The first batch holds the whole prelude: the history.
			x.readyOnce.Do(func() { close(x.ready) })
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
