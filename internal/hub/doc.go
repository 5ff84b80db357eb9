// Package hub is Herald's per-node fan-out. It receives every message of the
// broker's log once, and hands each to the local subscriptions of its topics
// through bounded per-subscriber queues, so that publishers never wait for
// subscribers and one slow subscriber never holds up another.
//
// A subscription starts with a prelude computed from one broker snapshot: a
// herald.reset event when the client's position cannot be honoured exactly,
// then the missed events (or, for a new subscriber, the retained ones), then
// an id-only marker carrying the snapshot's head. Live events follow; the
// subscription is registered before the snapshot is taken and live events at
// or below the head are skipped, which makes the hand-over from history to
// live exact.
//
// The hub does not encode events: each transport turns an Event into its
// wire form once, for all its subscribers, and keeps it on the event
// (Event.Memo).
//
// Lock order: broker lock (held while the broker calls HandleMessage) →
// shard.mu → Subscription.mu; Hub.mu alone (register and unregister take
// it, then each shard.mu, never both at once); Event.memoMu alone (held
// while a transport's encoder runs). Nothing takes them in another order.
// A subscription is signalled (Ready and its Notify callback) with no hub
// lock held: HandleMessage collects the subscriptions it queued events for
// and signals them once its shard locks are released, and the other
// signals (end, EndSlow, Subscribe) come after Subscription.mu is
// released. A transport's callback may thus take the transport's own locks
// (internal/transport writes its order down), which come after the broker
// lock and never nest inside the hub's.
package hub
