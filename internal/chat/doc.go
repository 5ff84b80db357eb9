// Package chat streams AI answers through Herald's history, so that they
// survive dropped connections, reloads and extra watchers without the model
// being asked twice.
//
// POST /chat starts a generation: a goroutine on the server, detached from
// the request, that streams the answer from an [llm.Provider] and publishes
// it to the topic "chat/<id>" of the hub — one "token" event per token (or
// per small group of tokens, see below), then one "done" event, or an
// "error" event. Both are published with Retain and Final: the topic ends
// with them, and the core then gives resume, several watchers, durability
// with a durable broker, and 204 No Content to a client that reconnects at
// or after the end.
//
// GET /chat/stream/{id} serves a topic as a text/event-stream. A watcher
// that sends Last-Event-ID resumes right after the last event it saw. A new
// watcher (no Last-Event-ID) of a running answer gets it from its first
// token; a new watcher of a finished answer gets only the final event,
// which holds the whole text, and the stream ends.
//
// The history keeps a bounded number of events per topic. A generation
// therefore never publishes more token events than fit: it reserves one
// slot for the final event and, when the answer could be longer than the
// slots left, groups tokens so that the worst case still fits (see
// batcher). The final event carries the full text in any case.
package chat
