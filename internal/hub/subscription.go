package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/heraldpush/herald/pubsub"
)

// Request describes a subscription.
type Request struct {
	// Topics to follow: at least one, each valid (see ValidateTopic).
	// Duplicates are ignored.
	Topics []string
	// LastEventID is the client's position, as it sent it; empty for a new
	// subscriber.
	LastEventID string
	// CanSeePrivate reports whether the subscriber may receive private
	// messages of topic. Nil means it may receive none.
	CanSeePrivate func(topic string) bool
	// Match, if set, decides which messages of the subscription's topics
	// the subscriber gets, in place of the default rule (public messages,
	// and private ones of a topic CanSeePrivate allows): a transport with
	// topic selectors of its own (the Mercure endpoint's URI templates)
	// follows a wider topic and narrows it with Match. It is called for
	// history and live messages alike, with hub locks held: it must be
	// fast, must not block, and must be safe for concurrent use. A final
	// message it refuses still ends its topics (the client gets an id-only
	// event in its place).
	Match func(m *pubsub.Message) bool
	// Internal marks a subscription that the server holds for itself (for
	// example the Mercure endpoint's index of publishers' ids), not a
	// client's: it is left out of the subscription counts and topic
	// statistics, and an administrator's Disconnect does not end it.
	Internal bool
}

// Subscription is one subscriber's stream: a prelude, then live events.
// A transport waits on Ready, then calls Pop, and writes what it gets, until
// Pop reports that the subscription has ended.
//
// Ready, Pop, Err and Close may be called concurrently.
type Subscription struct {
	hub           *Hub
	internal      bool
	topics        []string
	canSeePrivate func(string) bool
	match         func(*pubsub.Message) bool
	notify        chan struct{}
	wake          atomic.Pointer[func()] // see Notify

	mu        sync.Mutex
	queue     []*Event
	qbytes    int
	last      uint64          // highest offset queued
	open      map[string]bool // topics not finished yet; nil until the prelude is built
	ended     bool
	err       error
	preludeOK bool
}

// Subscribe registers a subscription and computes its prelude. It returns
// ErrFinished when every topic is finished and the client already has the
// final events, ErrClosed when the hub is closing, and the broker's error if
// the snapshot cannot be read. If the broker can tell (see
// pubsub.ListenNotifier), it first waits until Run listens, so that no
// message published after the snapshot is missed. The caller must Close
// the subscription.
func (h *Hub) Subscribe(ctx context.Context, req Request) (*Subscription, error) {
	topics := dedupe(req.Topics)
	if len(topics) == 0 {
		return nil, fmt.Errorf("%w: no topic", ErrInvalidTopic)
	}
	for _, t := range topics {
		if err := ValidateTopic(t); err != nil {
			return nil, err
		}
	}
	s := &Subscription{hub: h, topics: topics, canSeePrivate: req.CanSeePrivate, match: req.Match, internal: req.Internal, notify: make(chan struct{}, 1)}

	var (
		q      = pubsub.Query{Topics: topics}
		reason string
	)
	if req.LastEventID != "" {
		pos, err := pubsub.ParsePosition(req.LastEventID)
		if err != nil {
			reason = ReasonInvalidID
			// A position in no epoch: the broker reads the log from the start.
			pos = pubsub.Position{}
		}
		q.After = &pos
	}
	if err := h.waitListening(ctx); err != nil {
		return nil, err
	}
	if err := h.register(s); err != nil {
		return nil, err
	}
	snap, err := h.broker.Read(ctx, q)
	if err != nil {
		h.unregister(s)
		return nil, fmt.Errorf("hub: read snapshot: %w", err)
	}
	if reason == "" && q.After != nil {
		switch {
		case snap.EpochChanged:
			reason = ReasonEpochChanged
		case q.After.Offset > snap.Head.Offset:
			// Same epoch but from the future: not an id this log made.
			reason = ReasonInvalidID
			snap, err = h.broker.Read(ctx, pubsub.Query{Topics: topics, After: &pubsub.Position{}})
			if err != nil {
				h.unregister(s)
				return nil, fmt.Errorf("hub: read snapshot: %w", err)
			}
		case snap.Truncated:
			reason = ReasonTruncated
		}
	}

	// Which topics are still open for this client.
	after := uint64(0)
	if q.After != nil && reason != ReasonEpochChanged && reason != ReasonInvalidID {
		after = q.After.Offset
	}
	open := make(map[string]bool, len(topics))
	for _, t := range topics {
		f, finished := snap.Finals[t]
		if finished && (q.After == nil || (reason == "" || reason == ReasonTruncated) && after >= f.Offset) {
			continue // the client has the end already (or joins after it)
		}
		open[t] = true
	}
	if len(open) == 0 {
		h.unregister(s)
		return nil, ErrFinished
	}

	prelude := make([]*Event, 0, len(snap.Events)+len(snap.Retained)+2)
	if reason != "" {
		h.stats.reset(reason)
		prelude = append(prelude, &Event{Kind: KindReset, Reset: Reset{Reason: reason, LastEventID: req.LastEventID}})
	}
	history := snap.Events
	switch {
	case q.After == nil:
		history = snap.Retained
	case reason != "":
		// After a reset the client starts again from the topics' current
		// state, as a new subscriber does, then gets what history kept.
		history = withState(snap.Retained, snap.Events)
	}
	// The prelude is built before taking s.mu: live messages are offered
	// under the broker's lock, and a long replay must not hold up the
	// publisher.
	finished := false
	closeTopics := func(m *pubsub.Message) {
		if !m.Final {
			return
		}
		for _, t := range m.Topics {
			delete(open, t)
		}
		finished = len(open) == 0
	}
	replayed := 0
	for _, m := range history {
		if finished {
			break
		}
		if !s.visible(m) {
			if m.Final {
				// The client may not see it but must learn the end.
				prelude = append(prelude, hiddenFinal(m))
				closeTopics(m)
			}
			continue
		}
		prelude = append(prelude, NewMessageEvent(m))
		replayed++
		closeTopics(m)
	}
	if q.After != nil {
		h.stats.replayed.Add(uint64(replayed))
	}
	if !finished {
		// A topic whose final message is no longer in history (evicted)
		// is finished all the same.
		for t := range open {
			if _, ok := snap.Finals[t]; ok {
				delete(open, t)
			}
		}
		finished = len(open) == 0
		if finished || !endsAt(prelude, snap.Head) {
			prelude = append(prelude, &Event{Kind: KindPosition, Pos: snap.Head})
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.open = open
	if finished && !s.ended {
		s.ended, s.err = true, ErrFinished
	}
	// Keep the live events that came after the snapshot.
	live := s.queue
	s.queue = prelude
	s.qbytes = 0
	s.last = snap.Head.Offset
	for _, ev := range live {
		if s.ended {
			break
		}
		// Live events are in log order; a message with several of our
		// topics was offered once per topic.
		if ev.Msg.Pos.Offset > s.last && ev.Msg.Pos.Epoch == snap.Head.Epoch {
			s.last = ev.Msg.Pos.Offset
			s.queue = append(s.queue, ev)
			s.qbytes += ev.size()
			s.closeTopics(ev.Msg)
		}
	}
	s.preludeOK = true
	s.signal()
	return s, nil
}

// withState merges the retained messages into events, in position order,
// leaving out those that events hold already.
func withState(retained, events []*pubsub.Message) []*pubsub.Message {
	if len(retained) == 0 {
		return events
	}
	out := make([]*pubsub.Message, 0, len(retained)+len(events))
	i := 0
	for _, r := range retained {
		for i < len(events) && events[i].Pos.Offset < r.Pos.Offset {
			out = append(out, events[i])
			i++
		}
		if i < len(events) && events[i].Pos.Offset == r.Pos.Offset {
			continue // in history already
		}
		out = append(out, r)
	}
	return append(out, events[i:]...)
}

// endsAt reports whether the last event of evs is the message at pos, which
// makes a position marker for pos redundant.
func endsAt(evs []*Event, pos pubsub.Position) bool {
	if len(evs) == 0 {
		return false
	}
	last := evs[len(evs)-1]
	return last.Kind == KindMessage && last.Msg.Pos == pos
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

// hiddenFinal stands for a final message the subscriber may not see: it
// carries only the message's position (an id-only event), so that the
// client's reconnect lands after the end.
func hiddenFinal(m *pubsub.Message) *Event {
	return &Event{Kind: KindPosition, Pos: m.Pos, Msg: m}
}

// visible reports whether the subscriber may see m.
func (s *Subscription) visible(m *pubsub.Message) bool {
	if s.match != nil {
		return s.match(m)
	}
	if !m.Private {
		return true
	}
	if s.canSeePrivate == nil {
		return false
	}
	for _, t := range m.Topics {
		if slices.Contains(s.topics, t) && s.canSeePrivate(t) {
			return true
		}
	}
	return false
}

// closeTopics records the final messages among queued ones, and ends the
// subscription (after what is queued) once every topic is finished.
// s.mu is held.
func (s *Subscription) closeTopics(m *pubsub.Message) {
	if !m.Final || s.open == nil {
		return
	}
	for _, t := range m.Topics {
		delete(s.open, t)
	}
	if len(s.open) == 0 {
		s.ended = true
		s.err = ErrFinished
	}
}

// offer queues a live event. Called by the hub with the shard lock held.
func (s *Subscription) offer(ev *Event) {
	m := ev.Msg
	s.mu.Lock()
	if s.ended || m.Pos.Offset <= s.last && s.preludeOK {
		s.mu.Unlock()
		return
	}
	if s.preludeOK {
		s.last = m.Pos.Offset
	}
	if !s.visible(m) {
		if !m.Final {
			s.mu.Unlock()
			return
		}
		ev = hiddenFinal(m)
	}
	size := ev.size()
	if s.qbytes+size > s.hub.queueBytes {
		n := len(s.queue)
		s.queue, s.qbytes = nil, 0
		s.ended, s.err = true, ErrSlowConsumer
		s.mu.Unlock()
		s.hub.stats.slow.Add(1)
		s.hub.stats.dropped.Add(uint64(n + 1))
		s.signal()
		return
	}
	s.queue = append(s.queue, ev)
	s.qbytes += size
	if s.preludeOK {
		s.closeTopics(m)
	}
	s.mu.Unlock()
	s.signal()
}

func (s *Subscription) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
	if f := s.wake.Load(); f != nil {
		(*f)()
	}
}

// Notify makes the subscription call f, besides signalling Ready, each
// time events are queued or the subscription ends: a transport that serves
// many subscriptions without a goroutine each (the lean SSE path) uses it
// instead of waiting on Ready. f runs with hub locks held: it must be fast,
// must not block and must not call the subscription's methods. Events may
// be queued before Notify takes effect: call Pop once after it.
func (s *Subscription) Notify(f func()) {
	s.wake.Store(&f)
}

// end ends the subscription with err once what is queued has been taken.
func (s *Subscription) end(err error) {
	s.mu.Lock()
	if !s.ended {
		s.ended, s.err = true, err
	}
	s.mu.Unlock()
	s.signal()
}

func (s *Subscription) follows(topic string) bool {
	return slices.Contains(s.topics, topic)
}

// Topics returns the subscription's topics, without duplicates.
func (s *Subscription) Topics() []string { return s.topics }

// Ready returns a channel that receives a value when events are queued or
// the subscription ends. Call Pop after each receive.
func (s *Subscription) Ready() <-chan struct{} { return s.notify }

// Pop appends the queued events to dst and returns it, with open false once
// the subscription has ended and nothing more is queued; Err then tells why.
func (s *Subscription) Pop(dst []*Event) (events []*Event, open bool) {
	s.mu.Lock()
	n := len(s.queue)
	dst = append(dst, s.queue...)
	clear(s.queue)
	s.queue = s.queue[:0]
	s.qbytes = 0
	open = !s.ended
	s.mu.Unlock()
	s.hub.stats.delivered.Add(uint64(n))
	return dst, open
}

// EndSlow ends the subscription as a slow consumer because its transport
// could not write to the client within the write deadline, and counts it
// like a queue overflow. It does nothing if the subscription has ended.
func (s *Subscription) EndSlow() {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	n := len(s.queue)
	s.queue, s.qbytes = nil, 0
	s.ended, s.err = true, ErrSlowConsumer
	s.mu.Unlock()
	s.hub.stats.slow.Add(1)
	s.hub.stats.dropped.Add(uint64(n))
	s.signal()
}

// Err returns why the subscription ended: ErrFinished, ErrSlowConsumer,
// ErrClosed, ErrEpochChanged or ErrKicked; nil while it is open or after
// Close.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Graceful reports whether err (from Err) ends a stream in a way the client
// should take as normal: all queued events are still worth writing.
func Graceful(err error) bool {
	return err == nil || errors.Is(err, ErrFinished) || errors.Is(err, ErrClosed) || errors.Is(err, ErrKicked) || errors.Is(err, ErrEpochChanged)
}

// Close unregisters the subscription. It is idempotent.
func (s *Subscription) Close() {
	s.hub.unregister(s)
	s.mu.Lock()
	if !s.ended {
		s.ended = true
	}
	s.queue, s.qbytes = nil, 0
	s.mu.Unlock()
}
