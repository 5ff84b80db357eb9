// Package nats is a pubsub.Broker on NATS JetStream (nats-server 2.9 or
// later): several Herald nodes share one log, kept in one JetStream
// stream, with live delivery from one consumer per node.
//
// # Design
//
// The log is one stream (Options.Stream, default "HERALD"). The stream
// sequence is the position's offset, so a client following several topics
// resumes from one number. Each topic has a subject,
// "<Stream>.t.<topic in base64url>": the encoding makes any topic (dots,
// spaces, '*', '>') one valid subject token.
//
// Each Publish stores exactly one message, so that it has one position
// whatever its topics: it goes on the subject of its first topic, with all
// its topics, type, flags and data in the payload. JetStream acknowledges
// it before Publish returns. To find the message under its other topics,
// the state bucket (a JetStream key-value bucket, "<Stream>_state") holds,
// per topic, the other subjects that carry messages of it ("x.<topic>");
// that entry is written before the message, so the index never lags the
// stream. A Read of a topic reads its own subject and the subjects of its
// index, by subject filter, from the client's position up to Head, keeping
// the messages that have one of the query's topics.
//
// Head is the stream's last sequence when a Read starts; the stream only
// grows, so every message up to Head is read (or reported evicted), and
// every later one reaches each node's listener afterwards: each node reads
// the whole stream once with an ephemeral consumer that starts after the
// last sequence it delivered, and the hub fans out locally.
//
// # Truncation
//
// Retention.MaxEvents maps to the stream's MaxMsgsPerSubject, MaxAge to
// its MaxAge. Retention.MaxBytes does not map to the stream's MaxBytes,
// which would evict the oldest messages whatever their subject: the
// stream has no byte limit, and a trimmer shares the bound fairly, as
// pubsub.Retention says, per subject (see trim.go). One node of the stream
// runs it: the holder of a lease in the state bucket ("lease.trimmer",
// renewed every second; a node takes it over when its holder gives it up
// on Close or has not renewed it for 3 s, and reads the stream from its
// start). While the stream holds less than half the bound the trimmer
// only asks the stream's size; then it follows the stream with a
// headers-only consumer, counts each subject's bytes (payload plus 128,
// approximating Message.Size), and purges the oldest messages of the
// subject with the most bytes, never its newest, within milliseconds of
// the publish that went over the bound (history may exceed the bound
// meanwhile, and for up to about a second when another node's publishes
// fill the last half of the bound at once). Two holders at once (one
// that stalled) make the same purges: they are idempotent.
// JetStream does not say what it evicted, so each message carries, in a
// header, the sequence of the previous message on its subject (or, on a
// subject that was empty, a bound: the stream's first sequence then, since
// its older messages left with the oldest of the stream). Publishes on a
// subject are chained with Nats-Expected-Last-Subject-Sequence (optimistic
// concurrency between nodes), so the chain is exact. While a node writes
// alone its batches skip that check (the server loads the subject's
// newest message for it): each message of a wave instead expects the
// stream's last message to be the one the node sent before it
// (Nats-Expected-Last-Msg-Id), which proves that nothing reached any
// subject since the node last knew them all (see fast.go); the first
// message another node stores ends that, for a second. A client at position
// p is told history was truncated when the first message kept after p on a
// subject it reads names a predecessor after p, or when the subject is empty
// and the stream's first sequence is past p. For a topic's own subject that
// is exact; for the other subjects of its index it is coarse (an evicted
// message there may not have had the topic): a spurious reset, never a
// silent gap. Per-topic count limits apply to the subject a message is
// stored on: a message published to [a b] counts against a's limit.
//
// # Retained and final state
//
// A retained message is also written to the state bucket ("r.<topic>",
// newest wins); a new subscriber gets the newer of that and the topic's
// newest message. Retained state outlives the message's eviction from the
// stream. A topic is finished when the newest message on its subject is
// final. For a multi-topic final message, a marker message on each other
// topic's subject finishes it too (markers are not events; they take
// sequence numbers, so offsets may skip). Publishing to a finished topic
// fails with ErrTopicFinished: atomically for the message's first topic
// (the chained publish sees the final message), by a check just before
// publishing for its other topics.
//
// # Epochs
//
// The epoch is derived from the stream's creation time: every node computes
// the same one. When the stream is deleted, or the server lost its storage,
// the next node to need it creates it again: a new epoch. Listeners notice
// (their consumer disappears) and call Handler.HandleEpoch; the hub ends
// its streams, and clients reconnect and get a herald.reset with reason
// epoch-changed. A restarted server with its storage keeps the stream and
// the epoch: clients resume exactly.
//
// A listener that misses messages (they left the stream before it read
// them) calls HandleEpoch with the unchanged epoch: subscribers resume
// from history.
//
// # Outages
//
// The broker follows the connection through the client's status events
// (see conn.go), not missed heartbeats. When the connection is lost it
// logs it once; Publish and Read fail with errors wrapping
// pubsub.ErrUnavailable (the HTTP API answers 503), at once for a new
// request. A publish whose answer was lost with the connection waits for
// the connection to come back (within Options.Timeout) and is sent again:
// its Nats-Msg-Id makes JetStream store it once (the stream's Duplicates
// window is twice Options.Timeout, at least 30 s), and a chained publish
// that finds its own message newest on the subject takes its sequence. When
// the connection is back the broker logs it once, and each listener makes
// a new consumer at once (live delivery resumes within milliseconds of the
// first publish JetStream accepts) and logs that live delivery resumed.
// The client's asynchronous errors (slow consumers, permissions) go to the
// Logger, each at most once a minute, when the broker opened the
// connection (Open); Open also reconnects every 500 ms.
//
// # Conditional appends (Durable Streams)
//
// Broker implements pubsub.Conditional on the topic's subject. PublishIf
// sends the message with Nats-Expected-Last-Subject-Sequence set to the
// subject's newest sequence as this node knows it; JetStream refuses it if
// anything reached the subject since, from any node, and the node reads
// the subject again: if the topic's newest event is still the caller's
// tail (this node's view was stale, or the newest message is a purge
// marker, which is no event) it tries again, otherwise it returns
// pubsub.ErrConflict. The stream's sequences are positions, so a tail may
// skip numbers (markers, other subjects). A topic some of whose messages
// are stored on another subject (it was a second topic of a multi-topic
// publish) is refused with ErrSharedTopic: its subject would not tell its
// tail. Appends are bounded by NATS's max_payload (1 MiB by default, for
// the encoded message and its headers). A streams broker uses its own
// Options.Stream (for example "HERALD_STREAMS") with no retention.
//
// # Limits
//
// The state bucket belongs to the stream: delete both or neither. If the
// bucket alone is lost, the broker creates it again, but retained messages
// and the index of multi-topic messages are gone: a Read may then miss
// multi-topic messages under their other topics. Deleting the stream (a new
// epoch) is the clean way to start over.
//
// A Read costs a few JetStream requests per topic (newest message, index,
// first message after the position) plus one per message for short
// replays and a consumer for long ones. That consumer (AckNone, no-wait
// pulls) is never trusted to tell where a subject ends: the client gives
// up on a pull after a second without an answer, without an error, and
// what the server sends for it later is lost while the consumer counts it
// delivered. A batch without a message, or a jump in the consumer's own
// sequence, makes the read go on by gets, one message at a time, which
// answer or fail. NATS's max_payload (1 MB by
// default) bounds one message: keep Herald's --max-data-bytes below it or
// raise it. Stream Replicas (Options.Replicas) give durability across a
// NATS cluster; a message is acknowledged once the stream's quorum has it.
package nats
