// Package sse implements the Server-Sent Events wire format
// (text/event-stream) exactly as the WHATWG HTML standard defines it.
//
// Encode an [Event] with [Event.AppendTo] or [Event.WriteTo]; its fields are
// validated so that no value can inject a field or end an event early: data
// is split into one "data:" line per line, and ids and event types may not
// contain line breaks. Decode a stream with [Read], an iterator over the
// dispatched events, or with a [Decoder] when the reconnection time or the
// last event id is needed between events.
//
// Where a browser departs from the standard (Chromium does in three cases,
// which a test with a real Chromium keeps track of: see docs/client.md), the
// decoder keeps to the standard.
//
// The package uses the standard library only and knows nothing of clients or
// servers.
package sse
