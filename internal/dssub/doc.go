// Package dssub serves the subscriptions of the Durable Streams protocol
// (webhook and pull-wake) at <prefix>__ds/subscriptions/*, with the
// webhook signing keys at <prefix>__ds/jwks.json.
//
// A subscription names streams by a glob pattern or an explicit list.
// When a linked stream gets data past what the subscription acknowledged,
// the subscription is woken: a wake has an id and a generation, and a
// snapshot of the linked streams' tails. A webhook subscription's wake is
// POSTed to its URL, signed with Ed25519; a pull-wake subscription's is
// appended as a JSON event to its wake stream, and a worker claims it.
// The consumer acknowledges offsets and ends the wake with a bearer token
// that names the wake; a token of an older wake is fenced (409 FENCED).
//
// Every piece of state is on the streams broker (pubsub.Conditional), so
// that every node serves every subscription:
//
//   - "ds-sub/<id>/<k>": the subscription's log of JSON records, the
//     newest being its state (config, links and acked offsets, the current
//     wake, its holder and lease). Every change is a PublishIf on the tail
//     the change was decided on, so that two nodes never both create a
//     wake, deliver it, or accept an ack of a fenced one. The log moves to
//     segment k+1 every Options.RotateEvery records ("ds-sub/<id>" points
//     to the current segment; see subLog).
//   - "ds-sub-index/all": the ids of the subscriptions (put and del
//     records), which each node reads to know what to match.
//   - "ds-sub-key/ed25519": the cluster's signing key, written once with
//     PublishIf on the empty topic (unless a key file is configured).
//
// The node that handles a write to a stream matches it (streams.Options
// OnWrite feeds a bounded queue drained by one goroutine; a write dropped
// from the full queue, or not matched because the broker failed, makes the
// next full sweep match every stream the broker lists) and the node
// whose PublishIf creates the wake delivers it, holding the wake's lease
// (lease_ttl_ms). A sweeper on every node ends expired leases and wakes
// subscriptions whose streams have pending data without a wake, so a
// delivery lost with a node is made again by another after the lease.
//
// Concurrency: Manager.mu guards the cache of subscription logs and the
// index; each cached log's own mutex serialises this node's changes to
// it. Lock order: Manager.mu, then a log's mu; no broker call is made
// under Manager.mu.
package dssub
