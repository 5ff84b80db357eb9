// Package transport is the layer under every streaming face: the one
// subscription pump, the engine that serves streams without a goroutine,
// buffer or timer per idle connection (the lean path), and the request
// handling every face shares (ParseRequest, LastEventID, Subscribe,
// Refusal). Its subpackages hold the wire formats: sse (text/event-stream,
// for /events, Mercure, chat, the AI SDK and the demo) and ws (WebSocket).
//
// # The pump
//
// Pump pops what a subscription has queued, has the transport's Framing
// encode it (each event once for all subscribers: encoders memoize on the
// hub.Event) and appends it to a Batch; the engine writes the batch with a
// deadline and cuts off a client that cannot take it in time
// (hub.Subscription.EndSlow). A Protocol's Turn decides what else a turn
// writes: OneWay for SSE (keep-alive comments, herald.auth-expired, the
// end), the WebSocket transport's for frames, pings and the closing
// handshake.
//
// # The engine (the lean path)
//
// Once a request is subscribed, its connection is taken over from net/http
// (hijacked): net/http's serve goroutine, its buffers and its request are
// released, and the connection keeps its socket, its subscription and a
// small Conn. One concern per file:
//
//   - conn.go: the connection's state machine (idle, queued, busy, done);
//     Wake schedules a turn, from the subscription's Notify callback or from
//     anything else that becomes due.
//   - pool.go, worker.go: the ready queue and at most GOMAXPROCS short-lived
//     workers that give connections their turns and write each turn's batch
//     with one non-blocking writev(2) (io_unix.go). A connection whose socket
//     buffer is full gets a goroutine of its own until the rest is written
//     with the write deadline (Conn.flush).
//   - coalesce.go: a connection woken less than a millisecond after its last
//     write waits for the rest of that window (one timer for all), so that
//     a busy topic's events share writes.
//   - wheel.go: keep-alives and deadlines (credentials' expiry, a
//     protocol's timer) from one ticker per engine.
//   - watch_linux.go, read.go: one epoll set per engine watches every
//     connection for the peer's close and, for a connection whose client
//     talks (WebSocket), for data, which its turn reads without blocking;
//     where epoll is not available (or over TLS), a goroutine per
//     connection blocks in a read.
//   - engine.go: registration, the response head, metrics, Shutdown.
//   - pump.go: the pump and the standard path (ServeStandard), which serves
//     from the handler's goroutine what cannot be hijacked (HTTP/2, TLS SSE,
//     HTTP/1.0), with the same Protocol and the same bytes.
//
// # Lock order
//
// Engine.mu (the registry and the epoll set), Conn.mu (a connection's
// state), pool.mu (the ready queue), coalescer.mu and wheel.mu are each
// held alone: none of them is taken while another of the package's locks
// is held (a function that needs two takes and releases them in turn, as
// Wake does with Conn.mu then pool.mu, and the epoll loop with Engine.mu
// then, after releasing it, the connections'). The subprotocols' own locks
// (ws's per-connection mu) are held alone too. They all come after the
// hub's and the broker's: a subscription's Notify callback (Conn.Wake) is
// called with no hub lock held, possibly under the broker's lock (see
// internal/hub's doc), and a turn calls the subscription's methods (Pop,
// Err, Close) with none of this package's locks held. So the whole order
// is: broker lock → hub's shard.mu → Subscription.mu, and broker lock →
// one of this package's locks; never the reverse.
package transport
