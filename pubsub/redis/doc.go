// Package redis is a pubsub.Broker on Redis (6.2 or later; Redis Sentinel
// and Redis Cluster through go-redis): several Herald nodes share one log,
// with history, retained and final state in Redis, and live delivery by
// blocking stream reads.
//
// # Design
//
// One log orders every topic, so a client following several topics resumes
// from one position. Layout 2 (this one; see "Layout 1" below) keeps it as:
//
//   - a global counter (a field of the meta hash) gives each message the
//     next offset; the message goes, as one item "<offset> <ms> <encoded
//     message>", to the end of one Redis list per topic (a message of
//     several topics to each one's list): one RPUSH per topic per
//     publish, however many messages the publish holds for it;
//   - every publish is announced once on a live stream: one entry per
//     batch, holding the batch as published. Every node reads it with
//     XREAD BLOCK from the entry it has read: no polling, one reader per
//     node, messages in position order, each once; the hub fans them out
//     locally. The live stream is trimmed to Options.LiveWindow bytes;
//     history is in the topics' lists;
//   - Publish, Read and Purge are Lua scripts (embedded .lua files), so each
//     runs atomically: the counter, the lists, retained and final state and
//     the live stream change together, and a snapshot's Head is consistent
//     with its Events. A Read returns every message of its topics up to
//     Head (from the lists, found by binary search); every later message
//     reaches each node's listener after its Head. PublishBatch publishes
//     a whole batch in one script call (Publish is a batch of one).
//
// All keys of a deployment start with "{prefix}:" and share one Redis
// Cluster hash slot, which the scripts need. (Cluster then gives failover,
// not write scaling: one log is one slot; shards, one log each, spread.)
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
//   - Retention.MaxEvents: a topic's list may hold up to a tenth more
//     than the limit: the oldest extra items count as evicted (reads, the
//     tail and Topics skip them, and truncation is reported from them), and
//     the publish that brings the list to a tenth over pops it back to the
//     limit in one LPOP, recording the highest offset popped per topic (the
//     wm hash). Truncation is exact per topic. (A longer excess, the limit
//     set or lowered on a long list, leaves 10000 items a publish: no
//     script pops more than that, or than its batch brought, at once.)
//   - Retention.MaxBytes: history's size is counted in the meta hash (as
//     stored: a message counts the length of its item in each of its
//     topics' lists, a little more than Message.Size), and each topic's in
//     the sizes hash. Each publish appends its topics' size changes to a
//     pending list in one command; the sweeper (every node, idempotent,
//     every Options.SweepInterval) folds them in, and while history is over
//     the bound drops the oldest item of the topic with the most evictable
//     bytes (the fair sorted set: all but the topic's newest message), as
//     pubsub.Retention says, shortly after the publish rather than during
//     it.
//   - Retention.MaxAge: the sweeper drops items older than MaxAge from the
//     lists' fronts; the topics sorted set holds, per topic, the time of
//     its oldest item (or earlier), so that it looks only at topics that
//     may hold old ones; it drops at most 10000 items a script call.
//
// A topic whose list the sweeper empties is forgotten (its final state
// too, so a finished topic may be used again after MaxAge, as with the
// memory broker); a topic the broker does not know reports truncation to
// clients older than the newest forgotten message (a possible spurious
// reset, never a silent gap). Retained messages of unfinished topics are
// kept until replaced or purged. With neither MaxAge nor MaxBytes history
// grows without bound.
//
// # Layout 1
//
// Herald releases before layout 2 kept one stream of every message (the
// log) with an index stream per topic ("{prefix}:meta", "{prefix}:<epoch>:log",
// ...). This package neither reads nor deletes it: it starts its own epoch
// (meta and epochs under "{prefix}:v2:"), so that clients resuming from the
// old log get herald.reset with reason epoch-changed, and it warns at start
// while the old meta hash exists. Nodes of both layouts must not run
// together on one prefix (they would keep two logs); docs/deploy.md tells
// how to upgrade and delete the old keys.
//
// # Live delivery
//
// Broker implements pubsub.Conditional: PublishIf is publish.lua with a
// condition (the tail of the message's one topic, the last item of its
// list, compared in the same script before anything is written), and
// ReadTopic is read_topic.lua (one script: the tail and a page of the
// list). A streams broker that must not share keys with the pub/sub log
// uses its own Options.Prefix (for example "herald-streams"), on the same
// Redis or another.
//
// A node's listener that falls behind the live window (cut off from Redis,
// or stalled, while more than Options.LiveWindow bytes were published)
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
