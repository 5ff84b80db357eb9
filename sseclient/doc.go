// Package sseclient is an EventSource for Go: it reads a Server-Sent Events
// stream from any server that follows the WHATWG standard, and reconnects by
// itself, resuming where it stopped.
//
// Create a [Client] for a URL with [New], then range over [Client.Events]:
// it yields every event as the spec-exact [sse] decoder dispatches it. When
// the connection drops, the client waits (the server's retry: time, doubled
// for each failed attempt up to a cap, plus random jitter, or longer when a
// 429 or 503 answer says Retry-After) and reconnects with a Last-Event-ID
// header holding the last id it saw, including ids sent in blocks of their
// own. It stops for good, ending the iteration, on 204 No Content (without
// an error), on other 4xx answers except 408 and 429 (a [*StatusError]
// carrying the server's message), on a wrong Content-Type or an oversized
// event, and when its context ends. [Options] add request headers (e.g.
// Authorization), a custom *http.Client, an idle timeout and a callback that
// observes every state change ([Connecting], [Open], [Closed]) with its cause.
// [AsReset] turns Herald's herald.reset event into a [Reset], so a caller can
// resynchronise when the server could not promise that nothing was missed.
//
// The package runs no goroutine of its own: all work, including the
// OnState callback, happens in the goroutine ranging over Events.
package sseclient
