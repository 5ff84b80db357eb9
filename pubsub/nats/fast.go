package nats

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// fastPath lets a node's batches skip the per-subject chain check
// (Nats-Expected-Last-Subject-Sequence: the server loads the subject's
// newest message for each publish) while this node is the stream's only
// writer, and keep the chain exact.
//
// The node knows, for a set of subjects, their newest message as of the
// stream's sequence base: it published those messages itself, one right
// after the other up to base (the acknowledgements' sequences were
// consecutive, so nothing else was stored between them), the last of them
// with the Nats-Msg-Id baseID. A wave's message on such a subject is sent
// with Nats-Expected-Last-Msg-Id (which the server checks against the
// stream's last stored message's id, kept in memory) set to the id of the
// message the wave sent before it, or baseID for its first: JetStream
// stores it only if the stream's last message is that one, so (each
// message's id being unique, and every message before it in the wave
// expected the same way) nothing else was stored since base, from any
// node: the subject's newest message is still the one this node knows,
// and its Herald-Prev and finished state are exact as with the
// per-subject check. (The stream's expected last sequence would not do:
// when a wave's message is refused, another node's message may take its
// sequence, and the wave's next message would then be accepted.) If the stream refuses
// it, something else was stored: the message is sent again on its
// subject's chain, and the node publishes on the subjects' chains for
// fastCooldown (several nodes publishing at once would otherwise refuse
// each other's waves all the time). A wave whose acknowledgements are
// consecutive starts the set again, with its subjects, at its last.
//
// Streams of more than one replica (Options.Replicas) do not use it:
// there the server checks the expectation when it applies the replicated
// message, which this was not tested against.
//
// Only one wave at a time uses it (the others, concurrent on this node,
// go by the subjects' chains, and their messages make the stream refuse
// the fast wave's: safe, then slower for fastCooldown). A message this
// node stores otherwise (a single Publish, a marker) moves the stream's
// last sequence past base: the next fast message is refused.
type fastPath struct {
	mu     sync.Mutex // held by the wave that uses it
	gen    uint64     // subjects whose subjectState.fastGen is gen are known at base
	base   uint64
	baseID string    // the Nats-Msg-Id of the message at base
	baseAt time.Time // when the wave that stored base began (before base was sent)
	valid  bool
	until  time.Time // no fast message before (after a refusal)

	sent atomic.Int64 // messages sent with the stream's expectation (tests)
}

// fastCooldown is how long a node publishes on the subjects' chains after
// the stream refused a fast message.
const fastCooldown = time.Second

// start returns the set's generation and base, and whether fast messages
// may be sent. f.mu is held.
//
// The set expires maxAge after the wave that stored its base began: a
// Nats-Msg-Id is unique only within the stream's Duplicates window (a
// client may use an event ID again later, on any topic, through any
// node), so a message stored later with baseID would let a stale
// expectation through. maxAge is well inside that window (see
// fastMaxAge); an expired set starts again from the subjects' chains.
func (f *fastPath) start(maxAge time.Duration) (gen, base uint64, baseID string, ready bool) {
	now := time.Now()
	return f.gen, f.base, f.baseID, f.valid && now.After(f.until) && now.Sub(f.baseAt) < maxAge
}

// fastMaxAge is how long a fast set stays usable after the wave that
// stored its base began (so before JetStream's window for base began),
// for a stream whose Duplicates window is dup: half of it, at most 10 s.
func fastMaxAge(dup time.Duration) time.Duration {
	return min(dup/2, 10*time.Second)
}

// refused records that the stream refused a fast message. f.mu is held.
func (f *fastPath) refused() {
	f.valid = false
	f.until = time.Now().Add(fastCooldown)
}

// fastRun follows a wave's acknowledgements, in order: the subjects of
// its last messages stored one right after the other (from base when the
// wave started in step).
type fastRun struct {
	gen      uint64
	began    time.Time // before the wave's first message was sent
	fromBase bool      // the run continues the set at base
	next     uint64    // the sequence the next stored message must have; 0: any
	lastID   string    // the Nats-Msg-Id of the message at next-1
	subs     []*subjectState
}

// run starts following a wave. f.mu is held.
func (f *fastPath) run(gen, base uint64, ready bool) *fastRun {
	r := &fastRun{gen: gen, began: time.Now()}
	if ready {
		r.fromBase, r.next = true, base+1
	}
	return r
}

// stored records that the wave's message of Nats-Msg-Id id on ss's
// subject was stored at seq, and that ss now holds it. ss.mu is held.
func (r *fastRun) stored(ss *subjectState, seq uint64, id string) {
	if r == nil {
		return
	}
	if r.next != 0 && seq != r.next {
		r.fromBase, r.subs = false, r.subs[:0] // something else came between
	}
	r.subs = append(r.subs, ss)
	r.next, r.lastID = seq+1, id
}

// broken records that what the stream holds between the wave's stored
// messages is not known (a message stored earlier, or sent again on its
// own).
func (r *fastRun) broken() {
	if r == nil {
		return
	}
	r.fromBase, r.subs, r.next = false, r.subs[:0], 0
}

// end records the run's outcome: the set goes on at the run's last
// message, or starts again with the run's subjects, or is lost. f.mu is
// held.
func (f *fastPath) end(r *fastRun) {
	switch {
	case r.fromBase:
		if len(r.subs) > 0 {
			f.base, f.baseID, f.baseAt = r.next-1, r.lastID, r.began
		}
	case r.next != 0 && len(r.subs) > 0:
		f.gen++
		f.base, f.baseID, f.baseAt, f.valid = r.next-1, r.lastID, r.began, true
	default:
		f.valid = false
		return
	}
	for _, ss := range r.subs {
		ss.fastGen.Store(f.gen)
	}
}

// jsErrCodeWrongLastMsgID is JetStream's error code for a message whose
// Nats-Expected-Last-Msg-Id is not the stream's last message's.
const jsErrCodeWrongLastMsgID jetstream.ErrorCode = 10070

func isWrongLastMsgID(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeWrongLastMsgID
}
