// Package access is Herald's one door: every request that reads or writes
// a topic, or touches the server's state, is decided here, the same way on
// every face (SSE, WebSocket, publish, send, Mercure, chat, the demo, the
// admin API and dashboard).
//
// A request's Identity is resolved once, by Policy.Middleware: the client
// (its address as the trusted-proxy rules resolve it, failing closed: a
// forwarded client is remote, and one whose X-Forwarded-For hop does not
// parse is unknown), the Host it was addressed to and whether the host list
// allows it (a guard against DNS rebinding), the Origin it came from, and,
// verified lazily and at most once per role, what its token grants.
//
// A face plugs in with four calls:
//
//   - it registers each route with a policy entry, Router.Handle(pattern,
//     Route{Action, Face, Topics}, h): a route without an entry panics at
//     mount, and the app can list its routes (App.Routes) — the access
//     matrix test enumerates them;
//   - its handler asks Policy.Decide(r, Query{Action, Face, Topics}) once it
//     knows the topics, and serves with the Decision (the private-event
//     filter, the credentials' expiry, the requester's owner key);
//   - it answers every error with Write (one type, Error, one JSON shape,
//     counted in metrics) and reads bodies with ReadBody (413 before
//     reading when Content-Length says so);
//   - if it owns topics, it reserves them (Policy.Reserve(Namespace)); if it
//     reads tokens differently (Mercure), it sets its FaceRules.
//
// A new face (Durable Streams, an AI SDK endpoint) adds its Face and, if
// needed, its Actions, and the rules for them in rules.go; docs/security.md
// holds the same rules as a table.
//
// Concurrency: a Policy is configured while mounting and read-only once it
// serves. Identity.mu guards an Identity's token and grant caches and its
// publish-rate charge; it is held while a token is verified (which may take
// the JWKS cache's lock inside auth) and never while another of this
// package's locks is taken. Router.mu guards the route list only. Lock
// order: Identity.mu, then auth's JWKS lock; Router.mu alone.
package access
