package hub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/shard"
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
	logs          []int // the logs (shards) of its topics, ascending
	canSeePrivate func(string) bool
	match         func(*pubsub.Message) bool
	notify        chan struct{}
	wake          atomic.Pointer[func()] // see Notify
	closeOnce     sync.Once
	acquired      int // logs acquired (interest), in order of logs

	mu        sync.Mutex
	queue     []*Event
	qbytes    int
	pending   []pendingEvent  // live events offered before the prelude was built
	last      []uint64        // per log: highest offset queued
	fp        string          // several logs: the fingerprint of their epochs (ids)
	open      map[string]bool // topics not finished yet; nil until the prelude is built
	ended     bool
	err       error
	preludeOK bool
}

// pendingEvent is a live event of log k offered before the prelude.
type pendingEvent struct {
	ev *Event
	k  int
}

// Subscribe registers a subscription and computes its prelude. It returns
// ErrFinished when every topic is finished and the client already has the
// final events, ErrClosed when the hub is closing, and the broker's error if
// the snapshot cannot be read. It first waits until Run runs and the hub
// listens to the logs of the topics (which it starts doing, if no other
// subscription needed them), so that no message published after the
// snapshot is missed. The caller must Close the subscription.
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
	byLog := make(map[int][]string)
	for _, t := range topics {
		k := h.ShardOf(t)
		if byLog[k] == nil {
			s.logs = append(s.logs, k)
		}
		byLog[k] = append(byLog[k], t)
	}
	slices.Sort(s.logs)
	s.last = make([]uint64, len(s.logs))

	if err := h.waitRunning(ctx); err != nil {
		return nil, err
	}
	if err := h.register(s); err != nil {
		return nil, err
	}
	for _, k := range s.logs {
		probe := func() error {
			_, err := h.logs[k].broker.Read(ctx, pubsub.Query{Topics: byLog[k]})
			return err
		}
		if err := h.logs[k].acquire(ctx, probe); err != nil {
			s.Close()
			return nil, err
		}
		s.acquired++
	}
	p, err := h.prelude(ctx, s, req.LastEventID, byLog)
	if err != nil {
		s.Close()
		return nil, err
	}

	s.mu.Lock()
	s.open = p.open
	if p.finished && !s.ended {
		s.ended, s.err = true, ErrFinished
	}
	s.queue = p.events
	s.qbytes = 0
	s.last = p.heads
	s.fp = p.fp
	s.preludeOK = true
	// The live events that came while the prelude was built: those after
	// the snapshots' heads follow it.
	pending := s.pending
	s.pending = nil
	for _, pe := range pending {
		if s.ended {
			break
		}
		s.offerLocked(pe.ev, pe.k)
	}
	s.mu.Unlock()
	s.signal()
	return s, nil
}

// reads reports whether the subscription reads log k.
func (s *Subscription) reads(k int) bool {
	_, ok := slices.BinarySearch(s.logs, k)
	return ok
}

// logIndex returns the index of log k in s.logs.
func (s *Subscription) logIndex(k int) int {
	if len(s.logs) == 1 {
		return 0
	}
	i, _ := slices.BinarySearch(s.logs, k)
	return i
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

// offer queues a live event of log k. Called by the hub with the stripe
// lock held; it reports whether the subscription must be signalled (its
// queue or its state changed), which the hub does once the stripe lock is
// released.
func (s *Subscription) offer(ev *Event, k int) (signal bool) {
	s.mu.Lock()
	if !s.preludeOK {
		if !s.ended {
			s.pending = append(s.pending, pendingEvent{ev, k})
		}
		s.mu.Unlock()
		return false
	}
	queued, ended := len(s.queue), s.ended
	slow := s.offerLocked(ev, k)
	signal = len(s.queue) != queued || s.ended != ended
	s.mu.Unlock()
	if slow > 0 {
		s.hub.stats.slow.Add(1)
		s.hub.stats.dropped.Add(uint64(slow))
	}
	return signal
}

// offerLocked queues a live event of log k after the prelude: unless the
// subscriber has it (at or below its position there), or takes it from
// another log (see shard.Skip), or may not see it (a final message it may
// not see still ends its topics, as a position). It returns how many
// events were dropped when the queue overflowed (the subscription is then
// cut off). s.mu is held.
func (s *Subscription) offerLocked(ev *Event, k int) (dropped int) {
	m := ev.Msg
	i := s.logIndex(k)
	if s.ended || m.Pos.Offset <= s.last[i] {
		return 0
	}
	s.last[i] = m.Pos.Offset
	if !s.takes(m, k) {
		if !m.Final {
			return 0
		}
		ev = s.positionOf(m)
	} else if len(s.logs) > 1 {
		ev = &Event{Kind: KindMessage, Msg: m, base: ev, id: s.idLocked()}
	}
	size := ev.size()
	if s.qbytes+size > s.hub.queueBytes {
		n := len(s.queue)
		s.queue, s.qbytes = nil, 0
		s.ended, s.err = true, ErrSlowConsumer
		return n + 1
	}
	s.queue = append(s.queue, ev)
	s.qbytes += size
	s.closeTopics(m)
	return 0
}

// takes reports whether the subscriber gets m (of log k) as an event: it
// may see it, and it takes it from no lower log (an event split over
// shards is taken once, from the lowest shard whose copy the subscriber
// may see).
func (s *Subscription) takes(m *pubsub.Message, k int) bool {
	if !s.visible(m) {
		return false
	}
	if len(m.Also) == 0 || len(s.logs) == 1 || s.hub.sharded == nil {
		return true
	}
	for _, j := range s.logs {
		if j >= k {
			break
		}
		var on, rest []string
		for _, t := range m.Also {
			if s.hub.ShardOf(t) == j {
				on = append(on, t)
			} else {
				rest = append(rest, t)
			}
		}
		if !slices.ContainsFunc(on, s.follows) {
			continue
		}
		sib := *m
		sib.Topics, sib.Also = on, append(rest, m.Topics...)
		if s.visible(&sib) {
			return false
		}
	}
	return true
}

// positionOf returns the id-only event that stands for m, a final message
// the subscriber does not take: its position moves on past it.
func (s *Subscription) positionOf(m *pubsub.Message) *Event {
	ev := hiddenFinal(m)
	if len(s.logs) > 1 {
		ev.id = s.idLocked()
	}
	return ev
}

// idLocked returns the subscriber's position in its logs as an event id:
// a vector (see package shard). s.mu is held, or the subscription is not
// shared yet.
func (s *Subscription) idLocked() string {
	return string(shard.AppendVector(make([]byte, 0, len(s.fp)+8*len(s.logs)), s.fp, s.logs, s.last))
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
// many subscriptions without a goroutine each (the lean path of
// internal/transport) uses it instead of waiting on Ready. f runs with no
// hub lock held (the broker's may be: see the lock order in doc.go), on the
// goroutine that queued the events: it must be fast and must not block; it
// may take the transport's own locks. Events may be queued before Notify
// takes effect: call Pop once after it.
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

// End ends the subscription from the server's side once what is queued
// has been taken: the transport ends the stream cleanly and Err reports
// ErrClosed. A face whose protocol bounds a stream's life (Durable
// Streams' SSE reads, closed about every minute so that the client
// reconnects from its last offset) calls it; it does nothing after the
// subscription ended.
func (s *Subscription) End() { s.end(ErrClosed) }

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

// Close unregisters the subscription (and, if no other subscription needs
// them, the hub stops listening to its logs). It is idempotent.
func (s *Subscription) Close() {
	s.closeOnce.Do(func() {
		s.hub.unregister(s)
		for _, k := range s.logs[:s.acquired] {
			s.hub.logs[k].release()
		}
	})
	s.mu.Lock()
	if !s.ended {
		s.ended = true
	}
	s.queue, s.qbytes, s.pending = nil, 0, nil
	s.mu.Unlock()
}
