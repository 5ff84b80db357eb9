// Package sseclient is an EventSource for Go: it reads a Server-Sent Events
// stream from any server that follows the WHATWG standard, and reconnects by
// itself, resuming where it stopped.
//
// Create a [Client] for an http or https URL with [New], then range over
// [Client.Events]: it yields every event as the spec-exact [sse] decoder
// dispatches it. When the connection drops, the client waits (the server's
// retry: time, doubled for each failed attempt up to a cap, at least a 429
// or 503 answer's Retry-After, plus random jitter) and reconnects with a
// Last-Event-ID header holding the last id it saw, including ids sent in
// blocks of their own. It stops for good on 204 No Content (the iteration
// just ends), on a 4xx answer other than 408 and 429 (it yields a
// [*StatusError] with the server's message), on a wrong Content-Type or an
// oversized event, and when its context ends; network errors, 408, 429 and
// 5xx are retried. [Options] set the request's method, a body sent again
// with every connection (for streams served in answer to a POST, see
// [BodyBytes]) and headers, with a hook to change them per connection
// (fresh credentials); a custom *http.Client, an idle timeout, an immediate
// reconnection ([NoDelay]), comment lines for callers who want them, and a
// callback that observes every state change ([Connecting], [Open],
// [Closed]) with its cause. [AsReset] turns Herald's herald.reset event into
// a [Reset], so that a caller can resynchronise when the server could not
// promise that nothing was missed.
//
// Nothing runs in the background: all the work, including the callbacks
// (OnState, OnComment, PrepareRequest, Body), happens in the goroutine
// ranging over Events, so nothing is left running once the loop has
// returned.
package sseclient
