package streams

import (
	"context"
	"errors"
	"net/http"
)

// Hooks for the protocol's extensions that live beside the streams (the
// subscriptions of internal/dssub): a writer's notification, a stream's
// tail, and an append made by the server itself.

// notify tells Options.OnWrite that topic was written to (created, or
// appended to); it must not block.
func (s *Service) notify(topic string) {
	if s.onWrite != nil {
		s.onWrite(topic)
	}
}

// Tail returns the stream's tail offset as the protocol renders it
// (Stream-Next-Offset), and whether the stream is there (false, without an
// error, for a missing or deleted stream).
func (s *Service) Tail(ctx context.Context, topic string) (string, bool, error) {
	in, err := s.Stat(ctx, topic, false)
	var rf *refusal
	if errors.As(err, &rf) && (rf.status == http.StatusNotFound || rf.status == http.StatusGone) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return in.TailOffset().String(), true, nil
}

// AppendJSON appends one JSON value to the JSON stream at topic, under
// the protocol's rules (a missing, closed or non-JSON stream refuses), and
// returns the stream's new tail offset.
func (s *Service) AppendJSON(ctx context.Context, topic, value string) (string, error) {
	res, err := s.appendTo(ctx, topic, appendReq{contentType: "application/json", body: value})
	if err != nil {
		return "", err
	}
	return res.tail.String(), nil
}
