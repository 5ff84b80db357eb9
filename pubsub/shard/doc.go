// Package shard spreads topics over several logs (shards), each a
// pubsub.Broker of its own: a Redis hash tag or instance, a JetStream
// stream, a file. [Broker] implements pubsub.Sharded over them.
//
// # Which shard
//
// A topic's shard is a jump consistent hash (Lamping and Veach) of the
// FNV-1a 64-bit hash of its name ([Of]): stable across nodes, releases and
// platforms, and when the number of shards changes from n to n+1 only
// about 1/(n+1) of the topics move.
//
// # Events on several shards
//
// An event published to topics on several shards is stored once on each,
// as a message with the topics of that shard (Message.Topics) and the
// others in Message.Also, in ascending shard order; a publish that fails
// on one shard fails (the caller answers 503), and publishing it again
// with the same Message.ID stores it once on each shard (the brokers keep
// IDs for pubsub.DedupeWindow). A subscriber that follows topics on
// several of those shards takes the copy on the lowest shard whose copy it
// may see, and skips the others ([Skip]): a rule that needs no state, so
// it holds across reconnects and nodes.
//
// # Ids
//
// A connection whose topics are all on one shard keeps the one-log id
// "<epoch>-<offset>". A connection on several shards needs a position in
// each; its ids are vectors ([AppendVector], [ParseID]):
//
//	<fingerprint>~<shard>-<offset>.<shard>-<offset>...
//
// with the shard indexes and offsets in base 36, and a fingerprint (8 base
// 36 digits) of the shards' epochs in the id, so that an id whose shards
// have since changed epoch is known as such. Only the connection's shards
// appear: at most 9 + 17 bytes per shard (3 + 2 per shard below an offset
// of 36^4 = 1.7 million, typically).
//
// # Changing the number of shards
//
// Shard k keeps its storage whatever the number of shards, so shard 0 of
// any count is the log of a deployment with one shard. Each shard records,
// in a retained message on a reserved topic, the shard counts it was part
// of and from which position ([Broker.Moved]): a subscriber resuming from
// a position taken before a topic moved (even if it moved back since) is
// told the log changed (herald.reset, epoch-changed), never a silent gap.
package shard
