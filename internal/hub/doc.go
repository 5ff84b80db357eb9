// Package hub is Herald's per-node fan-out. It receives every message of the
// broker's log once, and hands each to the local subscriptions of its topics
// through bounded per-subscriber queues, so that publishers never wait for
// subscribers and one slow subscriber never holds up another.
//
// A subscription starts with a prelude computed from one broker snapshot: a
// herald.reset event when the client's position cannot be honoured exactly,
// then the missed events (or, for a new subscriber, the retained ones; after
// a reset, the retained ones merged with what history kept, in position
// order), then an id-only marker carrying the snapshot's head. Live events follow; the
// subscription is registered before the snapshot is taken and live events at
// or below the head are skipped, which makes the hand-over from history to
// live exact.
//
// Lock order: broker lock (held while the broker calls HandleMessage) →
// shard.mu → Subscription.mu; broker lock → Hub.syncMu (taken alone, by
// HandleMessage after the fan-out, and by Sync). Hub.mu is taken alone.
// Nothing takes them in another order.
package hub
