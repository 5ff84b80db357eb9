// Package bolt is Herald's durable embedded broker: one log kept in a single
// bbolt file (go.etcd.io/bbolt), used by `herald serve --data-dir DIR`.
//
// # Why bbolt
//
// bbolt is a B+tree in one file with serializable, ACID transactions: a
// commit writes new pages (copy-on-write), fsyncs them, then switches one of
// two checksummed meta pages. A crash at any instant leaves the last
// committed transaction; there is no write-ahead log to replay and no
// recovery step. It is pure Go (the herald binary stays static), small, and
// has run etcd for years. Pebble, the alternative, is an LSM tree: faster
// for very large write volumes, but a directory of files, background
// compactions and a much larger dependency, for a history that Herald keeps
// bounded anyway. bbolt's single writer is no limit here: concurrent
// publishes share transactions (group commit).
//
// # Guarantees
//
//   - Publish returns only after the transaction holding the message was
//     committed and fsynced: an acknowledged message survives kill -9 and
//     power loss (if the disk honours flushes).
//   - The epoch is created with the file and never changes, so positions
//     stay valid across restarts. ResetEpoch changes it on purpose, after a
//     backup was restored.
//   - One writer goroutine commits queued publishes in batches (up to
//     Options.MaxBatch per fsync), then hands the messages to the Handler in
//     position order, then answers the publishers.
//   - Read is one read transaction: a consistent snapshot at Head.
//
// # Retention and disk use
//
// Retention.MaxEvents (per topic) and MaxAge (swept every SweepInterval)
// evict the oldest messages; MaxBytes (all history, counted as
// pubsub.Message.Size counts it) is shared fairly: it evicts the oldest
// message of the topic holding the most bytes, never a topic's newest (each
// topic counts its bytes, and a bucket orders the topics by what may be
// taken from them). Per-topic eviction marks let Read report truncation
// exactly. Retained messages (a topic's current state) are kept until
// replaced or purged; finished topics are forgotten after MaxAge. bbolt
// reuses the pages of evicted messages, so the file stops growing once
// history is at its bound; it never shrinks while open, and Open rewrites a
// file that is mostly free pages (see Options.CompactMinBytes).
//
// # Conditional appends (Durable Streams)
//
// Broker implements pubsub.Conditional. PublishIf is queued to the writer
// like Publish; inside the batch's transaction it checks the topic's final
// state and tail (the last key of the topic's index) and appends through
// the same code, so group commit, live delivery and retention are
// Publish's; a refused append writes nothing. ReadTopic is one read
// transaction: a seek in the topic's index and a forward walk of the log.
// ReadTopicTo (pubsub.TopicStreamer) walks the same way but hands each
// message to a callback as a view of bbolt's memory map, one Message
// reused, no copy: Durable Streams' catch-up reads copy the bytes from it
// into their response buffer, a bounded amount per transaction, since
// bbolt cannot grow (remap) its file while a read transaction is open.
// A streams broker is a file of its own: Open it at its own path (for
// example "streams.db" in the data directory) with no retention.
//
// # Layout
//
// See store.go: buckets for the log (offset → record), a per-topic index,
// per-topic counters and eviction marks, retained and final records, and
// finished topics by age.
package bolt
