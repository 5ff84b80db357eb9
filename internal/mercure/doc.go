// Package mercure serves the Mercure protocol at /.well-known/mercure on
// top of Herald's hub: the same log, the same exact resume, the same
// brokers. Mercure clients (EventSource pages, Symfony and API Platform
// publishers, the client libraries) work against Herald unchanged.
//
// Publishing (POST, a form with topic, data, private, id, type, retry)
// stores an update as one Herald message whose topics are the update's
// topics (canonical and alternates) and HubTopic. A publisher-chosen id and
// a retry delay travel in the message's metadata (Message.Meta, see wrap),
// so that every broker carries them; an index maps
// publisher-chosen ids to log positions, so that resuming from one is
// exact.
//
// Subscribing (GET with topic selectors: exact IRIs, URI templates, "*")
// opens one hub subscription. Exact selectors are Herald topics; template
// and "*" selectors make the subscription follow HubTopic, which every
// Mercure update carries. A hub Match rule then keeps the updates one of
// the selectors selects and, for private updates, that the token's
// mercure.subscribe claim allows. History, replay and the hand-over to
// live are the hub's, so one position space and exact resume hold for
// templates too.
//
// With subscriptions on, subscription events are published (private, on
// /.well-known/mercure/subscriptions/{topic}/{subscriber}) as subscribers
// come and go, and the subscriptions API lists this node's subscribers.
//
// docs/mercure.md describes the endpoint for users and operators.
package mercure
