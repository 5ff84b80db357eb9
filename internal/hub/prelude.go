package hub

import (
	"context"
	"fmt"
	"slices"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/shard"
)

// preludeResult is what a subscription starts with.
type preludeResult struct {
	events   []*Event
	heads    []uint64 // per log of the subscription: the snapshot's head
	fp       string   // several logs: fingerprint of their epochs
	open     map[string]bool
	finished bool // every topic ends within the prelude
}

// prelude reads a snapshot of each of the subscription's logs and builds
// its prelude: a herald.reset when the client's position cannot be
// honoured exactly, the history (or retained state), and a position
// marker. It returns ErrFinished when the client has every final event.
func (h *Hub) prelude(ctx context.Context, s *Subscription, lastID string, byLog map[int][]string) (preludeResult, error) {
	n := len(s.logs)
	after := make([]*pubsub.Position, n) // nil: a new client
	reason := make([]string, n)
	if lastID != "" {
		epochs := make([]string, len(h.logs))
		for k, ls := range h.logs {
			epochs[k] = ls.broker.Epoch()
		}
		entries, err := shard.ParseID(lastID, epochs)
		for i, k := range s.logs {
			// A position in no current epoch reads the log from its start
			// (the broker reports EpochChanged).
			pos := pubsub.Position{}
			if err != nil {
				reason[i] = ReasonInvalidID
			}
			for _, e := range entries {
				if e.Shard == k && e.Pos.Epoch != "" {
					pos = e.Pos
				}
			}
			if pos.Epoch != "" && h.sharded != nil && slices.ContainsFunc(byLog[k], func(t string) bool { return h.sharded.Moved(t, pos) }) {
				// The shard count changed since, and some topic lived on
				// another log meanwhile: its history here is not whole.
				pos = pubsub.Position{}
				reason[i] = ReasonEpochChanged
			}
			after[i] = &pos
		}
	}
	snaps := make([]pubsub.Snapshot, n)
	for i, k := range s.logs {
		b := h.logs[k].broker
		snap, err := b.Read(ctx, pubsub.Query{Topics: byLog[k], After: after[i]})
		if err != nil {
			return preludeResult{}, fmt.Errorf("hub: read snapshot: %w", err)
		}
		if after[i] != nil && reason[i] == "" {
			switch {
			case snap.EpochChanged:
				reason[i] = ReasonEpochChanged
			case after[i].Offset > snap.Head.Offset:
				// Same epoch but from the future: not an id this log made.
				reason[i] = ReasonInvalidID
				if snap, err = b.Read(ctx, pubsub.Query{Topics: byLog[k], After: &pubsub.Position{}}); err != nil {
					return preludeResult{}, fmt.Errorf("hub: read snapshot: %w", err)
				}
			case snap.Truncated:
				reason[i] = ReasonTruncated
			}
		}
		snaps[i] = snap
	}
	conn := ""
	for _, r := range []string{ReasonInvalidID, ReasonEpochChanged, ReasonTruncated} {
		if slices.Contains(reason, r) {
			conn = r
			break
		}
	}

	// Which topics are still open for this client; where it stands.
	open := make(map[string]bool, len(s.topics))
	cur := make([]uint64, n)
	for i, k := range s.logs {
		exact := after[i] != nil && (reason[i] == "" || reason[i] == ReasonTruncated)
		if exact {
			cur[i] = after[i].Offset
		}
		for _, t := range byLog[k] {
			f, finished := snaps[i].Finals[t]
			if finished && (after[i] == nil || exact && cur[i] >= f.Offset) {
				continue // the client has the end already (or joins after it)
			}
			open[t] = true
		}
	}
	if len(open) == 0 {
		return preludeResult{}, ErrFinished
	}
	if conn != "" {
		// After a reset the client starts again from its topics' current
		// state, on every log: read the retained messages of the logs it
		// resumed exactly.
		for i, k := range s.logs {
			if reason[i] != "" || after[i] == nil {
				continue
			}
			st, err := h.logs[k].broker.Read(ctx, pubsub.Query{Topics: byLog[k]})
			if err != nil {
				return preludeResult{}, fmt.Errorf("hub: read snapshot: %w", err)
			}
			for _, m := range st.Retained {
				if m.Pos.Epoch == snaps[i].Head.Epoch && m.Pos.Offset <= snaps[i].Head.Offset {
					snaps[i].Retained = append(snaps[i].Retained, m)
				}
			}
		}
	}

	res := preludeResult{open: open, heads: make([]uint64, n)}
	if n > 1 {
		entries := make([]shard.Entry, n)
		for i, k := range s.logs {
			entries[i] = shard.Entry{Shard: k, Pos: snaps[i].Head}
		}
		res.fp = shard.Fingerprint(entries)
	}
	vector := func() string {
		return string(shard.AppendVector(nil, res.fp, s.logs, cur))
	}
	events := make([]*Event, 0, 2)
	if conn != "" {
		h.stats.reset(conn)
		events = append(events, &Event{Kind: KindReset, Reset: Reset{Reason: conn, LastEventID: lastID}})
	}
	// The prelude is built before taking s.mu: live messages are offered
	// under the broker's lock, and a long replay must not hold up the
	// publisher.
	closeTopics := func(m *pubsub.Message) {
		if !m.Final {
			return
		}
		for _, t := range m.Topics {
			delete(open, t)
		}
		res.finished = len(open) == 0
	}
	replayed := 0
	for i, k := range s.logs {
		history := snaps[i].Events
		switch {
		case after[i] == nil:
			history = snaps[i].Retained
		case conn != "":
			history = withState(snaps[i].Retained, snaps[i].Events)
		}
		for _, m := range history {
			if res.finished {
				break
			}
			cur[i] = max(cur[i], m.Pos.Offset)
			if !s.takes(m, k) {
				if m.Final {
					// The client may not see it (or takes it from another
					// log) but must learn the end.
					ev := hiddenFinal(m)
					if n > 1 {
						ev.id = vector()
					}
					events = append(events, ev)
					closeTopics(m)
				}
				continue
			}
			ev := NewMessageEvent(m)
			if n > 1 {
				ev.id = vector()
			}
			events = append(events, ev)
			replayed++
			closeTopics(m)
		}
	}
	if slices.ContainsFunc(after, func(p *pubsub.Position) bool { return p != nil }) {
		h.stats.replayed.Add(uint64(replayed))
	}
	for i := range s.logs {
		res.heads[i] = snaps[i].Head.Offset
	}
	if !res.finished {
		// A topic whose final message is no longer in history (evicted)
		// is finished all the same.
		for i, k := range s.logs {
			for _, t := range byLog[k] {
				if _, ok := snaps[i].Finals[t]; ok {
					delete(open, t)
				}
			}
		}
		res.finished = len(open) == 0
		if n == 1 {
			if res.finished || !endsAt(events, snaps[0].Head) {
				events = append(events, &Event{Kind: KindPosition, Pos: snaps[0].Head})
			}
		} else if last := len(events) - 1; res.finished || !slices.Equal(cur, res.heads) || last < 0 || events[last].Kind != KindMessage {
			copy(cur, res.heads)
			events = append(events, &Event{Kind: KindPosition, Pos: snaps[0].Head, id: vector()})
		}
	}
	res.events = events
	return res, nil
}
