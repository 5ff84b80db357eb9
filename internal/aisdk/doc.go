// Package aisdk serves Herald's resumable AI answers (internal/chat) in the
// UI message stream protocol of the Vercel AI SDK, so that the `ai` npm
// package's DefaultChatTransport and useChat({ resume: true }) can use
// Herald as their chat backend without an adapter.
//
// POST /ai/chat takes what DefaultChatTransport sends (the chat's id, its
// UI messages, the trigger and the message id), starts a generation through
// the chat service and answers with the answer's stream. GET
// /ai/chat/{id}/stream replays the chat's active answer from its start and
// follows it to its end, or answers 204 No Content when the chat has none.
// POST /ai/chat/{id}/stop cancels the active answer and keeps the partial
// text. A client that disconnects (a reload, a network drop, the SDK's
// stop()) only closes its connection: the generation goes on, and the model
// is asked once per POST.
//
// Each answer is a chat stream of its own (the topic "chat/<generation
// id>", see internal/chat): its token events become text-delta chunks, its
// final event becomes text-end and finish (or abort after a stop, or error
// after a failure), then "data: [DONE]". The chat's id, chosen by the
// client, points to its active answer in an index on this node.
//
// A stream that ends before its final event (a slow reader cut off, an
// administrator's disconnect) is aborted, not ended cleanly: the SDK must
// see a broken connection, never a short answer that looks whole.
package aisdk
