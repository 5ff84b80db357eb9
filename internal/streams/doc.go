// Package streams serves the Durable Streams protocol (PROTOCOL.md of
// github.com/durable-streams/durable-streams) at /v1/stream/*: append-only
// byte streams that clients create, append to, read from any offset and
// follow live (long-poll or SSE).
//
// A stream is one topic of a broker of its own (the streams broker, opened
// with no history limits) that implements pubsub.Conditional, and
// everything a stream holds is in that topic's log, so every rule is
// decided by the log and holds across nodes:
//
//   - the create message carries the stream's metadata in Message.Meta
//     (content type, TTL or expiry, fork source) and its initial body;
//   - each append is one message (Data: the bytes; in JSON mode the
//     flattened units joined by commas) with its producer's id, epoch and
//     sequence and its Stream-Seq in Meta;
//   - closing is a final message (empty, or with the last body);
//   - deleting is a final tombstone appended on the tail, then a Purge.
//
// A Service keeps a cache of each stream's state (its metadata, producers,
// tail and whether it is closed), built by applying the log's messages in
// order, and checks every write against the log with PublishIf on the tail
// it decided on: on a conflict it reads what it missed (ReadTopic from its
// cached tail) and decides again. Producer fencing and sequence checks thus
// hold across nodes.
//
// Offsets are positions of the streams broker's log, rendered so that they
// sort as text, with a segment ahead of them for forks (see Offset).
//
// Concurrency: Service.mu guards the map of cached streams; each stream's
// entry.mu serialises the writes of this node to it and guards its state.
// Lock order: Service.mu, then entry.mu; no broker call is made under
// Service.mu.
package streams
