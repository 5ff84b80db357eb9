// Package pubsub is the contract between Herald's hub and the engines that
// store and carry its events: the [Message], its stream [Position], the
// [Broker] interface, and the errors a broker returns.
//
// A broker keeps one ordered log per deployment. Every message gets the next
// position in that log, whatever its topics, so one position tells where a
// client that follows several topics stands. The log has an epoch, a random
// value created with it: when the log is lost or recreated the epoch changes,
// and a client that holds a position from another epoch is told so instead
// of being silently shown a different history.
//
// Implementations live in their own packages (memory, bolt, redis, nats) so
// that a program imports only the engines it uses; pubsubtest holds the
// conformance suite every implementation passes.
package pubsub

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Position is a place in a broker's log: the log's epoch and an offset in it.
// Offsets start at 1; offset 0 means "before the first message".
type Position struct {
	Epoch  string
	Offset uint64
}

// String returns the position as an event id: "<epoch>-<offset>".
func (p Position) String() string {
	return p.Epoch + "-" + strconv.FormatUint(p.Offset, 10)
}

// IsZero reports whether p is the zero Position.
func (p Position) IsZero() bool { return p == Position{} }

// ErrInvalidPosition is returned (wrapped) by ParsePosition.
var ErrInvalidPosition = errors.New("pubsub: invalid position")

// ParsePosition parses an event id made by Position.String.
func ParsePosition(s string) (Position, error) {
	i := strings.LastIndexByte(s, '-')
	if i <= 0 || i == len(s)-1 {
		return Position{}, fmt.Errorf("%w: %q", ErrInvalidPosition, s)
	}
	epoch := s[:i]
	if !ValidEpoch(epoch) {
		return Position{}, fmt.Errorf("%w: bad epoch in %q", ErrInvalidPosition, s)
	}
	off, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil || s[i+1] == '+' {
		return Position{}, fmt.Errorf("%w: bad offset in %q", ErrInvalidPosition, s)
	}
	return Position{Epoch: epoch, Offset: off}, nil
}

// ValidEpoch reports whether s can serve as an epoch: 1 to 64 ASCII letters,
// digits or underscores.
func ValidEpoch(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Message is one published event. A broker fills Pos and Time when it
// accepts the message; after that a Message is shared and never modified.
type Message struct {
	// Topics the message is published to; at least one, no duplicates.
	Topics []string
	// Type is the SSE event type; empty means the default ("message").
	Type string
	// Data is the event's payload text.
	Data string
	// Retain makes the message the current state of each of its topics:
	// new subscribers get it first.
	Retain bool
	// Final ends each of its topics: nothing may be published to them after
	// it, and subscribers' streams end once they have it.
	Final bool
	// Private restricts delivery to subscribers authorised for one of the
	// message's topics.
	Private bool
	// ID, when set, names the event for idempotent publishing: a broker
	// remembers the IDs of the messages it stored recently (see
	// DedupeWindow) and stores a message whose ID it holds only once;
	// Publish then returns the first one's position. A publisher that got
	// an error may therefore publish the same event again. 1 to MaxIDLen
	// bytes; subscribers never see it.
	ID string
	// Meta holds protocol metadata that travels with the message but is
	// not its payload, keyed "<protocol>.<name>" (the Mercure endpoint
	// keeps a publisher's event id and retry delay in "mercure.id" and
	// "mercure.retry"). Nil when there is none; never modified once
	// published.
	Meta map[string]string
	// Also lists the event's topics that are stored on other shards of a
	// sharded broker (see Sharded): the event was split into one message
	// per shard, each with the topics of its shard in Topics and the
	// others here, so that a subscriber of topics on several shards can
	// take the event once. Empty for an event stored whole.
	Also []string

	// Pos is the message's position in the log, set by the broker.
	Pos Position
	// Time is when the broker accepted the message.
	Time time.Time
}

// MaxIDLen is the longest Message.ID, in bytes.
const MaxIDLen = 128

// DedupeWindow is how long a broker remembers a message's ID at least.
const DedupeWindow = 2 * time.Minute

// Size is the message's approximate memory footprint, used for byte limits.
func (m *Message) Size() int {
	n := len(m.Type) + len(m.Data) + len(m.Pos.Epoch) + 96
	for _, t := range m.Topics {
		n += len(t) + 16
	}
	if m.ID != "" || len(m.Meta) > 0 || len(m.Also) > 0 {
		n += len(m.ID)
		for k, v := range m.Meta {
			n += len(k) + len(v) + 16
		}
		for _, t := range m.Also {
			n += len(t) + 16
		}
	}
	return n
}

// HasTopic reports whether the message is published to topic.
func (m *Message) HasTopic(topic string) bool {
	for _, t := range m.Topics {
		if t == topic {
			return true
		}
	}
	return false
}

// Query asks a broker for the state a new or resuming subscriber needs.
type Query struct {
	// Topics the subscriber follows.
	Topics []string
	// After is the subscriber's position. When nil the subscriber is new:
	// the snapshot holds the retained messages and no history.
	After *Position
}

// Snapshot is a consistent view of the log for a Query: every message of the
// query's topics up to Head is either in Events (or Retained) or was published
// before the subscriber's position, and every later one will be delivered live.
type Snapshot struct {
	// Head is the position of the newest message in the whole log when the
	// snapshot was taken (offset 0 when the log is empty).
	Head Position
	// Events are the messages of the query's topics after Query.After, up to
	// Head, in position order, each once even if it has several of the topics.
	// When Query.After belongs to another epoch, Events start at the
	// beginning of the log and EpochChanged is set.
	Events []*Message
	// Retained holds the latest retained message of each query topic that
	// has one, in position order, each once, when the subscriber starts
	// from the topics' current state: when Query.After is nil (a new
	// subscriber), and when the snapshot reports EpochChanged or Truncated
	// (a resuming subscriber whose history cannot be replayed exactly,
	// which the hub tells with a herald.reset). A retained message may then
	// also be in Events. Otherwise Retained is nil.
	Retained []*Message
	// EpochChanged reports that Query.After is from another epoch.
	EpochChanged bool
	// Truncated reports that messages of a query topic after Query.After
	// are no longer in the log.
	Truncated bool
	// Finals maps each finished query topic to its final message's position.
	Finals map[string]Position
}

// Handler receives a broker's live messages. Calls are made from one
// goroutine at a time, in position order, and must not block: the hub only
// queues what it receives.
type Handler interface {
	// HandleMessage is called for every message published after Listen was
	// called, on any node.
	HandleMessage(m *Message)
	// HandleEpoch is called when the log's epoch changes (its data was lost
	// or recreated). Positions of the old epoch mean nothing in the new one.
	// A broker may also call it with the unchanged epoch when it could not
	// deliver some live messages to this node (for example, the node was
	// cut off from the engine for longer than the engine keeps them): the
	// handler must then have its subscribers resume from history.
	HandleEpoch(epoch string)
}

// StartHandler is a Handler that is told when Listen has taken effect.
// Every broker calls HandleStart when its Handler implements it; the hub
// waits for it before it reads a subscriber's snapshot, which makes the
// hand-over from history to live exact whenever it starts listening.
type StartHandler interface {
	Handler
	// HandleStart is called once per Listen call, before any other call,
	// with the log's head at that moment: every message after head
	// reaches the handler.
	HandleStart(head Position)
}

// Broker stores messages in an ordered log with bounded history and delivers
// them live. All methods are safe for concurrent use.
//
// Storing a message in history and delivering it live are atomic per log:
// a message that a Read does not return (because it was published after the
// snapshot's Head) is delivered to the Handler afterwards, and a message the
// Handler receives before a Read is in that Read (unless evicted).
type Broker interface {
	// Publish appends m to the log, sets m.Pos and m.Time, and returns once
	// the message is stored as durably as the broker promises. It returns
	// ErrTopicFinished if one of m's topics is finished, ErrUnavailable
	// (wrapped) if the engine cannot be reached.
	Publish(ctx context.Context, m *Message) (Position, error)
	// Read returns a snapshot for q.
	Read(ctx context.Context, q Query) (Snapshot, error)
	// Listen delivers live messages to h until ctx ends or the broker is
	// closed: every message published after Listen took effect (see
	// StartHandler), in position order. It returns nil when ctx ends. It
	// may be called again once a previous call has returned (the hub
	// listens to a log only while it has subscribers for it); each call
	// starts at the head of the log when it takes effect. At most one
	// call runs at a time.
	Listen(ctx context.Context, h Handler) error
	// Epoch returns the log's current epoch.
	Epoch() string
	// Close releases the broker's resources.
	Close() error
}

// Sharded is implemented by a Broker that spreads topics over several
// logs, its shards, by a stable hash of the topic: each shard is a Broker
// of its own, with its own epoch, positions, history, retained and final
// state, and a topic always lives on one shard. Its own methods route to
// the shards: Publish splits a message whose topics are on several shards
// into one message per shard (Message.Also names the other shards'
// topics); Read serves queries whose topics are on one shard; Epoch is
// shard 0's. The hub reads, listens and resumes per shard.
type Sharded interface {
	Broker
	// Shards returns the shards, shard k at index k.
	Shards() []Broker
	// ShardOf returns the index of topic's shard.
	ShardOf(topic string) int
	// Moved reports whether messages of topic published after pos (a
	// position in topic's shard) may be on another log: the number of
	// shards changed since, and the topic was on another shard for a
	// while. A subscriber resuming from pos must then be told.
	Moved(topic string, pos Position) bool
}

// LogOf returns the broker that holds topic's log: b itself, or topic's
// shard when b is Sharded.
func LogOf(b Broker, topic string) Broker {
	if s, ok := b.(Sharded); ok {
		return s.Shards()[s.ShardOf(topic)]
	}
	return b
}

// BatchPublisher is implemented by brokers that can publish several
// messages for less than a Publish each (the memory broker takes its lock
// once). PublishBatch must have the effect of Publish called for each
// message in order: it stops at the first message it cannot publish and
// returns how many it published, with that message's error.
type BatchPublisher interface {
	PublishBatch(ctx context.Context, msgs []*Message) (n int, err error)
}

// Purger is implemented by brokers that can drop a topic's history.
type Purger interface {
	// Purge removes the history and retained state of topic.
	Purge(ctx context.Context, topic string) error
}

// Conditional is implemented by brokers that can append to one topic on
// the condition that nothing was appended to it since the caller last looked:
// a compare-and-append. Durable Streams (internal/streams) build their
// idempotent producers, closing and forks on it, so that every rule is
// decided by the log itself and holds across nodes. A Conditional broker
// used for streams is opened with no retention limits.
type Conditional interface {
	// ReadTopic returns topic's messages after the position after (the
	// zero Position: from its first message), in order, at most limit of
	// them (limit <= 0: all), and the topic's tail: the position of its
	// newest message, or the zero Position when it has none. When after is
	// not zero and belongs to another epoch it returns ErrEpochChanged
	// (wrapped).
	ReadTopic(ctx context.Context, topic string, after Position, limit int) (msgs []*Message, tail Position, err error)
	// PublishIf appends m, which has exactly one topic, if and only if
	// that topic's tail is tail (the zero Position: the topic has no
	// message), and sets m.Pos and m.Time as Publish does; it returns
	// m.Pos. When the tail differs it appends nothing and returns
	// ErrConflict (wrapped); it returns ErrTopicFinished when the topic is
	// finished, as Publish does. m.ID is not used for deduplication here:
	// the condition already makes a retried append safe.
	PublishIf(ctx context.Context, tail Position, m *Message) (Position, error)
}

// TopicStreamer is implemented by Conditional brokers that can hand a
// topic's messages to the caller while they read them, without copying
// their data out of the store (the embedded bolt store reads them from its
// memory map). Durable Streams' catch-up reads use it when the broker has
// it, and ReadTopic otherwise.
type TopicStreamer interface {
	// ReadTopicTo calls fn with topic's messages after the position after,
	// in order, at most limit of them (limit <= 0: all), from one read of
	// the store, and returns the topic's tail as ReadTopic does. The
	// message and everything it refers to (Data, ID, Type, Topics, Also,
	// Meta) are valid only during the call and must not be modified: copy
	// what must outlive it. fn runs while the store's read is open, so it
	// must be quick (copy and return; never wait on a client): a long read
	// delays the store's writers. An error from fn ends the read and is
	// returned as it is. ReadTopicTo returns ErrEpochChanged (wrapped) as
	// ReadTopic does, and errors.ErrUnsupported (wrapped) when the topic's
	// store cannot be read this way (a sharded broker whose shard lacks
	// it): the caller then uses ReadTopic.
	ReadTopicTo(ctx context.Context, topic string, after Position, limit int, fn func(m *Message) error) (tail Position, err error)
}

// Errors returned by brokers; check them with errors.Is.
var (
	// ErrConflict: a conditional append found the topic's tail moved.
	ErrConflict = errors.New("pubsub: topic changed since it was read")
	// ErrEpochChanged: a position belongs to another epoch of the log.
	ErrEpochChanged = errors.New("pubsub: the log's epoch changed")
	// ErrTopicFinished: a final message was published to the topic already.
	ErrTopicFinished = errors.New("pubsub: topic is finished")
	// ErrUnavailable: the engine behind the broker cannot be reached.
	ErrUnavailable = errors.New("pubsub: broker unavailable")
	// ErrClosed: the broker was closed.
	ErrClosed = errors.New("pubsub: broker closed")
	// ErrTooLarge: the message is larger than the engine behind the broker
	// accepts (NATS's max_payload); sending it again will not help.
	ErrTooLarge = errors.New("pubsub: message larger than the broker accepts")
)

// Retention bounds a broker's history. Zero fields mean no limit of that kind.
type Retention struct {
	// MaxEvents per topic.
	MaxEvents int
	// MaxAge of a message in history; finished topics are forgotten after it.
	MaxAge time.Duration
	// MaxBytes of history in all (approximate, by Message.Size), shared
	// fairly between topics: while history is over it, the broker evicts
	// the oldest message of the topic that holds the most bytes (a message
	// counts against each of its topics; it leaves a topic's history, and
	// frees its bytes once no topic holds it), and never a topic's newest
	// message. One busy topic therefore cannot flush the others: a topic
	// loses history only while no other topic holds more. History may
	// exceed MaxBytes by the newest message of each topic. A broker may
	// enforce the bound shortly after a publish rather than during it.
	MaxBytes int64
}

// NewEpoch returns a new random epoch: 10 lower-case letters and digits.
func NewEpoch() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("pubsub: crypto/rand failed: " + err.Error())
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

// TopicInfo describes one topic's history in a broker.
type TopicInfo struct {
	Topic    string
	Messages int  // messages held in history
	Retained bool // has a retained message
	Finished bool // a final message was published
}

// Inspector is implemented by brokers that can list the topics they hold.
type Inspector interface {
	// Topics describes every topic the broker holds history for.
	Topics(ctx context.Context) ([]TopicInfo, error)
}
