// Package redis is a pubsub.Broker on Redis (6.2 or later; Redis Sentinel
// and Redis Cluster through go-redis): several Herald nodes share one log,
// with history, retained and final state in Redis, and live delivery by
// blocking stream reads.
//
// # Design
//
// One log orders every topic, so a client following several topics resumes
// from one position. Its messages live in Redis Streams:
//
//   - a global counter (a field of the meta hash) gives each message the
//     next offset; the message is appended to the log stream with the
//     stream id "<offset>-0", and its offset to one small index stream per
//     topic (same id, no payload). A message with several topics is stored
//     once and has one position;
//   - every node reads the log stream with XREAD BLOCK from the offset it
//     has delivered: no polling, one reader per node, messages in position
//     order, each once; the hub fans them out locally;
//   - Publish, Read and Purge are Lua scripts (embedded .lua files), so each
//     runs atomically: the counter, the log, the indexes, retained and final
//     state change together, and a snapshot's Head is consistent with its
//     Events. A Read returns every message of its topics up to Head; every
//     later message reaches each node's listener after its Head.
//     PublishBatch publishes a whole batch in one script call (Publish is
//     a batch of one), each topic's bookkeeping done once per batch;
//
// All keys of a deployment start with "{prefix}:" and share one Redis
// Cluster hash slot, which the scripts need. (Cluster then gives failover,
// not write scaling: one log is one slot.)
//
// # Epochs and data loss
//
// The epoch is stored in the meta hash, created with the log, and is part
// of every other key's name. When Redis loses Herald's data (FLUSHDB, a
// restart without persistence, a failover to an empty replica) the meta
// hash is gone: the next script to run creates a new epoch and announces it
// on a stream every node also blocks on. Each node's listener then calls
// Handler.HandleEpoch, which ends its streams; clients reconnect and get a
// herald.reset with reason epoch-changed, then the new log. Keys of a dead
// epoch are never read again.
//
// Replication in Redis is asynchronous: a failover may lose the last
// acknowledged writes while keeping the meta hash. Offsets are then given
// out again, and a client holding one of the lost positions may miss the
// messages that reuse them. Use persistence (appendonly yes with fsync),
// and Redis's min-replicas-to-write, to make this unlikely; it cannot be
// detected after the fact. Redis must not evict keys
// (maxmemory-policy noeviction; the broker warns at start otherwise):
// evicting one key loses history silently.
//
// # Retention and truncation
//
//   - Retention.MaxEvents: each topic's index is trimmed to that many
//     entries when the topic is published to, exactly, and the highest
//     offset trimmed is recorded per topic (the wm hash): truncation is
//     exact per topic. A message no topic's index holds any more leaves
//     the log (a message of several topics counts its holders in the refs
//     hash).
//   - Retention.MaxBytes: the log's size (by Message.Size) is counted, and
//     each topic's (the sizes hash; every index entry carries its
//     message's size). The publish script shares the bound fairly, as
//     pubsub.Retention says: while the log is over it, it drops the oldest
//     entry of the topic with the most evictable bytes (the fair sorted
//     set: all but the topic's newest message), as MaxEvents drops one.
//     A log written by an older Herald, without sizes, is evicted oldest
//     first until none of it is left (meta's legacy offset).
//   - Retention.MaxAge: a clock stream maps time to offsets; a sweeper on
//     every node (idempotent, every Options.SweepInterval) evicts messages
//     older than MaxAge from the log.
//
// Messages dropped by the count or byte bound leave the log with XDEL;
// Redis frees a stream's memory by nodes of up to 100 entries
// (stream-node-max-entries), so with small messages the log may take more
// memory than its count until age or the next entries empty those nodes.
//
// No offset below the log's floor is in it (age and the legacy bound trim
// from the front). Index entries below the floor are dropped lazily and
// count as evicted. Topics whose messages all left the
// log are forgotten (their final state too, so a finished topic may be
// used again after MaxAge, as with the memory broker); a topic the broker
// does not know reports truncation to clients older than the newest
// forgotten message (a possible spurious reset, never a silent gap).
// Retained messages of unfinished topics are kept until replaced or purged.
// With neither MaxAge nor MaxBytes the log grows without bound.
//
// # Live delivery
//
// Broker implements pubsub.Conditional: PublishIf is publish.lua with a
// condition (the tail of the message's one topic, the last entry of its
// index stream, compared in the same script before anything is written),
// and ReadTopic is read_topic.lua (one script: the tail and a page of the
// index). A streams broker that must not share keys with the pub/sub log
// uses its own Options.Prefix (for example "herald-streams"), on the same
// Redis or another.
//
// A node's listener that falls behind (it could not read a message before
// the bounds evicted it: a node cut off for longer than history lasts, or
// lagging behind a topic whose whole history the byte bound keeps short)
// misses messages. It detects it (offsets are consecutive) and calls
// HandleEpoch with the unchanged epoch, so that subscribers resume from
// history.
//
// While Redis cannot be reached the listener retries with a short backoff
// (at most 250 ms), and at once when a Publish or Read of the node
// succeeds, so that live delivery resumes with the first publish Redis
// accepts; it logs the interruption and the resumption once each. Publish
// and Read fail meanwhile with errors wrapping pubsub.ErrUnavailable (the
// HTTP API answers 503). (go-redis stops dialling after a run of failures
// and probes once a second: Redis is "back" for Herald at the first probe
// that succeeds.)
//
// A Publish whose context ends while Redis runs the script may have stored
// the message: the caller sees an error and may publish it again.
package redis
