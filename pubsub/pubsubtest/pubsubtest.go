// Package pubsubtest is the conformance suite every [pubsub.Broker] passes,
// in the manner of testing/slogtest: an implementation's tests call [Run]
// with a function that opens a fresh broker, and the suite checks the
// contract written on the pubsub package:
//
//   - ordering: positions strictly increase in one log, per topic in
//     publish order, live delivery in position order from one goroutine;
//   - snapshots: Head, Events after a position for several topics (each
//     message once), Retained (for new subscribers and after a reset),
//     Finals, EpochChanged, Truncated;
//   - Listen starting at the head (HandleStart), and again after it
//     returned;
//   - the exact hand-over from Read to Listen under concurrent publishing,
//     done as the hub does it (register, read, skip live messages at or
//     below Head): no gap, no duplicate;
//   - epochs, retention (per-topic count, age, total bytes shared fairly
//     between topics) and truncation;
//   - retained and final messages (ErrTopicFinished), Purge if implemented;
//   - idempotent publishing by Message.ID (stored once, the first position
//     answered again);
//   - PublishBatch, for brokers that implement pubsub.BatchPublisher: the
//     effect of Publish per message (several topics, retained, final, IDs,
//     the batch stopped at a finished topic), and a batch that evicts its
//     own messages still delivered whole to listeners;
//   - concurrency (run the suite with -race), cancellation, Close
//     (ErrClosed afterwards) and goroutine leaks after Close;
//   - pubsub.Conditional, for brokers that implement it (the others skip
//     those tests, saying so): ReadTopic's window and tail, PublishIf's
//     condition (exactly one winner per tail, among goroutines and
//     nodes), binary data, finished and purged topics, epochs, and a
//     topic of about 100 MiB read back in pages;
//   - optionally, a second node on the same log (Options.Peer) and a
//     restart over the same storage (Options.Reopen).
//
// A typical use:
//
//	func TestConformance(t *testing.T) {
//		pubsubtest.Run(t, func(t *testing.T, r pubsub.Retention) pubsub.Broker {
//			return memory.New(&memory.Options{Retention: r})
//		}, nil)
//	}
//
// Run the suite's test alone in its package or at least not in parallel
// with tests that start goroutines: the leak check compares the goroutines
// alive before and after each broker's life.
//
// Besides the suite, the package holds what the brokers' own tests share:
// [Listener] and [Listen] (a handler that records what Listen delivers, to
// wait on), [ShardCountGuard] and [LastShard] (a broker's shards under
// pubsub/shard).
package pubsubtest

import (
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
)

// NewBroker opens a fresh broker for one test: its log is empty, shared with
// no other test (use a unique key prefix, stream or file per call), and its
// history is bounded by r.
//
// The suite closes the broker when the test ends, so Close must be safe to
// call more than once. Resources the broker does not own (a shared client,
// keys or files to delete) may be released with t.Cleanup: those cleanups
// run after the suite has closed the broker.
type NewBroker func(t *testing.T, r pubsub.Retention) pubsub.Broker

// Options declare what a broker can do, and tune the suite. The zero value
// (or nil) claims the full contract; every field's comment states its
// default.
type Options struct {
	// NoMaxEvents declares that the broker does not enforce
	// Retention.MaxEvents; the tests that need it are skipped. Default
	// false.
	NoMaxEvents bool
	// NoMaxAge declares that the broker does not enforce Retention.MaxAge.
	// Default false.
	NoMaxAge bool
	// NoMaxBytes declares that the broker does not enforce
	// Retention.MaxBytes. Default false.
	NoMaxBytes bool
	// NoDedupe declares that the broker does not keep Message.ID for
	// idempotent publishing; the Idempotent test is skipped. Default
	// false.
	NoDedupe bool
	// NotEmpty declares that a fresh log may already hold messages the
	// broker wrote itself, on topics of its own (a shard's records of the
	// shard count): offsets are then checked from its head. Default
	// false: a fresh log is empty.
	NotEmpty bool
	// CoarseTruncation declares that the broker may report
	// Snapshot.Truncated for a topic when older messages of other topics
	// were evicted (a spurious reset, never a silent gap). Default false:
	// truncation must be exact per topic.
	CoarseTruncation bool

	// Peer, when set, opens a second broker on the same log as b, as
	// another node of a cluster would; the Peer tests check that both see
	// one log. The suite closes it. Default nil: no Peer tests.
	Peer func(t *testing.T, b pubsub.Broker) pubsub.Broker
	// Reopen, when set, opens a new broker over the same storage as b,
	// which the suite has closed, as a restarted process would; the Reopen
	// tests check that the epoch, history, retained and final state
	// survive. The suite closes it. Default nil: no Reopen tests.
	Reopen func(t *testing.T, b pubsub.Broker) pubsub.Broker

	// CondOwnTopics declares that ReadTopic and PublishIf may refuse,
	// with an error, a topic that was a second or later topic of a message
	// published to several (the NATS broker stores such a message under
	// its first topic only). Default false: every topic is served.
	CondOwnTopics bool
	// MaxData is the largest Message.Data the broker stores, in bytes:
	// the size of the large messages of the conditional tests. Default
	// 1 MiB.
	MaxData int
	// LargeBytes is about how much data the conditional tests append to
	// one topic and read back in pages (skipped with -short). Default
	// 100 MiB.
	LargeBytes int64

	// Wait bounds every wait for an asynchronous effect: live delivery,
	// Listen returning, age-based eviction (on top of MaxAge). Default 10s.
	Wait time.Duration
	// SkipLeakCheck turns off the goroutine leak check (for example when
	// the suite must run in parallel with other tests). Default false.
	SkipLeakCheck bool
	// LeakIgnore lists fully qualified functions (as in a stack trace,
	// e.g. "github.com/x/y.(*Pool).reaper") whose goroutines the leak check
	// ignores: goroutines of resources shared by every broker that outlive
	// them by design. Default none.
	LeakIgnore []string
}

type suite struct {
	newBroker NewBroker
	o         Options
}

type testCase struct {
	name string
	run  func(s *suite, t *testing.T)
}

// Run runs the conformance suite as subtests of t, opening a fresh broker
// with newBroker for each. opts may be nil.
func Run(t *testing.T, newBroker NewBroker, opts *Options) {
	t.Helper()
	s := &suite{newBroker: newBroker}
	if opts != nil {
		s.o = *opts
	}
	s.defaults()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(s, t) })
	}
}

// RunConditional runs only the suite's tests of pubsub.Conditional (the
// subtests named Cond…), for a broker that does not pass the whole suite
// on its own, such as a sharded broker whose Read refuses topics of
// several shards. opts may be nil.
func RunConditional(t *testing.T, newBroker NewBroker, opts *Options) {
	t.Helper()
	s := &suite{newBroker: newBroker}
	if opts != nil {
		s.o = *opts
	}
	s.defaults()
	for _, c := range cases {
		if strings.HasPrefix(c.name, "Cond") {
			t.Run(c.name, func(t *testing.T) { c.run(s, t) })
		}
	}
}

func (s *suite) defaults() {
	if s.o.Wait <= 0 {
		s.o.Wait = 10 * time.Second
	}
	if s.o.MaxData <= 0 {
		s.o.MaxData = 1 << 20
	}
	if s.o.LargeBytes <= 0 {
		s.o.LargeBytes = 100 << 20
	}
}

var cases = []testCase{
	{"Epoch", (*suite).testEpoch},
	{"PublishPositions", (*suite).testPublishPositions},
	{"PublishRejectsNoTopic", (*suite).testPublishNoTopic},
	{"Fields", (*suite).testFields},
	{"Ordering", (*suite).testOrdering},
	{"SnapshotEmpty", (*suite).testSnapshotEmpty},
	{"SnapshotAfter", (*suite).testSnapshotAfter},
	{"SnapshotRetained", (*suite).testSnapshotRetained},
	{"SnapshotEpochChanged", (*suite).testSnapshotEpochChanged},
	{"RetainedAfterReset", (*suite).testRetainedAfterReset},
	{"Final", (*suite).testFinal},
	{"Idempotent", (*suite).testIdempotent},
	{"Batch", (*suite).testBatch},
	{"BatchRetention", (*suite).testBatchRetention},
	{"TruncationMaxEvents", (*suite).testTruncationMaxEvents},
	{"StateOutlivesHistory", (*suite).testStateOutlivesHistory},
	{"TruncationMaxBytes", (*suite).testTruncationMaxBytes},
	{"FairMaxBytes", (*suite).testFairMaxBytes},
	{"TruncationMaxAge", (*suite).testTruncationMaxAge},
	{"Purge", (*suite).testPurge},
	{"Concurrency", (*suite).testConcurrency},
	{"HandOver", (*suite).testHandOver},
	{"Cancellation", (*suite).testCancellation},
	{"ListenCancel", (*suite).testListenCancel},
	{"ListenAgain", (*suite).testListenAgain},
	{"Close", (*suite).testClose},
	{"Leaks", (*suite).testLeaks},
	{"PeerSharesLog", (*suite).testPeerSharesLog},
	{"PeerHandOver", (*suite).testPeerHandOver},
	{"Reopen", (*suite).testReopen},
	{"CondEmpty", (*suite).testCondEmpty},
	{"CondAppend", (*suite).testCondAppend},
	{"CondLive", (*suite).testCondLive},
	{"CondReadTopic", (*suite).testCondReadTopic},
	{"CondOtherTopics", (*suite).testCondOtherTopics},
	{"CondFinal", (*suite).testCondFinal},
	{"CondPurge", (*suite).testCondPurge},
	{"CondBatch", (*suite).testCondBatch},
	{"CondEpoch", (*suite).testCondEpoch},
	{"CondRace", (*suite).testCondRace},
	{"CondPeerRace", (*suite).testCondPeerRace},
	{"CondLarge", (*suite).testCondLarge},
}
