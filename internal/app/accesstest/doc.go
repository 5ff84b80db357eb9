// Package accesstest holds the access matrix (issue 15): every route the
// app registers, taken from its own route list, against every kind of
// identity (no token, a forged or expired token, one issued in the future,
// one for another topic, one for the topic, the admin token, a client a
// proxy forwarded, a page of another origin, a request for a foreign Host,
// an access token of the current Mercure protocol whose
// authorization_details grant what the topic token's mercure claim does),
// and every topic class (public, private, reserved, chat, demo) through
// every transport (SSE /events, WebSocket /ws, Mercure), in development
// mode and with keys. It asserts each answer's status, and that nothing is
// delivered where refused: live, on resume and as retained state. It runs
// over real loopback HTTP with a real WebSocket client, one server per
// configuration.
package accesstest
