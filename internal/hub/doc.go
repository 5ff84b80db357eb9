// Package hub is Herald's per-node fan-out. It receives the messages of
// the broker's logs (one, or one per shard of a sharded broker) and hands
// each to the local subscriptions of its topics through bounded
// per-subscriber queues, so that publishers never wait for subscribers and
// one slow subscriber never holds up another.
//
// A subscription starts with a prelude computed from one broker snapshot
// per log its topics live on: a herald.reset event when the client's
// position cannot be honoured exactly, then the missed events (or, for a
// new subscriber, the retained ones; after a reset, the retained ones
// merged with what history kept, in position order), then an id-only
// marker carrying the snapshots' heads. Live events follow; the
// subscription is registered before the snapshots are taken and live
// events at or below a log's head are skipped, which makes the hand-over
// from history to live exact, per log.
//
// Interest: the hub listens to a log only while a local subscription needs
// it. The first subscription of a log starts a Listen call and waits until
// it has taken effect (pubsub.StartHandler) before reading its snapshot;
// when the last one ends, the hub stops listening after Options.Linger. A
// node without subscribers reads nothing.
//
// Several logs: a subscription of topics on several shards keeps a
// position per log, and its event ids are vectors of them (see package
// pubsub/shard); an event split over shards is taken once, from the lowest
// shard whose copy the subscriber may see (Subscription.takes). A
// subscription of topics on one log keeps the one-log id "<epoch>-<offset>"
// and shares each event's encodings with every other subscriber.
//
// The hub does not encode events: each transport turns an Event into its
// wire form once, for all its subscribers, and keeps it on the event
// (Event.Memo). An event of a subscription on several logs has an id of
// its own (Event.ID) and stands for a shared event (Event.Shared) whose
// encodings without an id it reuses.
//
// Lock order: broker lock (held while the broker calls HandleMessage) →
// stripe.mu → Subscription.mu; broker lock → logState.syncMu (taken alone,
// by the fan-out after it, and by Sync). logState.mu, Hub.mu and
// Subscription.mu are never held together with another of the hub's
// locks, except Subscription.mu under stripe.mu as above; Event.memoMu is
// held alone (while a transport's encoder runs). Nothing takes them in
// another order. A subscription is signalled (Ready and its Notify
// callback) with no hub lock held: the fan-out collects the subscriptions
// it queued events for and signals them once its stripe locks are
// released, and the other signals (end, EndSlow, Subscribe) come after
// Subscription.mu is released. A transport's callback may thus take the
// transport's own locks (internal/transport writes its order down), which
// come after the broker lock and never nest inside the hub's.
package hub
