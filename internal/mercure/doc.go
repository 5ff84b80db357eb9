// Package mercure serves the Mercure protocol at /.well-known/mercure on
// top of Herald's hub: the same log, the same exact resume, the same
// brokers. Mercure clients (EventSource pages, Symfony and API Platform
// publishers, the client libraries) work against Herald unchanged, those
// of the 0.x protocol and those of the current one (draft 08, the
// reference hub's 1.0) alike, at the same endpoint: each request is read
// in both protocols' terms (matchers.go names the parameters; tokens'
// mercure claims and authorization_details are read by internal/auth and
// decided by internal/access).
//
// Publishing (POST, a form with topic, data, private, id, type, retry)
// stores an update as one Herald message whose topics are the update's
// topics (canonical and alternates) and HubTopic. A publisher-chosen id and
// a retry delay travel in the message's metadata (Message.Meta, see wrap),
// so that every broker carries them; an index maps publisher-chosen ids to
// the log position of their latest update, so that resuming from one is
// exact (an id may be reused, as the reference hub allows: resuming from it
// resumes after its latest update).
//
// Subscribing (GET with topic selectors: 0.x's "topic" with exact IRIs,
// URI templates and "*"; the current "match" and "match_urlpattern" with
// exact topics, URL patterns and "*") opens one hub subscription. Exact
// selectors are Herald topics; template, URL pattern and "*" selectors
// make the subscription follow HubTopic, which every Mercure update
// carries. A hub Match rule then keeps the updates one of
// the selectors selects and, for private updates, that the token's
// grant allows (its mercure.subscribe claim or subscribe authorization
// details). History, replay and the hand-over to
// live are the hub's, so one position space and exact resume hold for
// templates too.
//
// With subscriptions on, subscription events are published (private, on
// /.well-known/mercure/subscriptions/{topic}/{subscriber} for a 0.x
// selector, .../{match_type}/{match}/{subscriber} for a current one) as
// subscribers come and go, and the subscriptions API lists this node's
// subscribers.
//
// docs/mercure.md describes the endpoint for users and operators.
package mercure
