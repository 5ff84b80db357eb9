package chat_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/chat"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/journal"
	"github.com/heraldpush/herald/internal/llm/openaitest"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/bolt"
)

// tokenEvents returns how many token events stream id has in history.
func tokenEvents(t *testing.T, b pubsub.Broker, id string) int {
	t.Helper()
	snap, err := b.Read(context.Background(), pubsub.Query{Topics: []string{chat.TopicPrefix + id}, After: &pubsub.Position{Epoch: b.Epoch()}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range snap.Events {
		if m.Type == chat.EventToken {
			n++
		}
	}
	return n
}

// A graceful shutdown ends an answer in progress with its error event
// (code "interrupted", the partial text) on the streams open, before they
// end: a watcher is told, instead of its stream just stopping.
func TestShutdownEndsAnswersWithInterrupted(t *testing.T) {
	stuck := openaitest.New(t, openaitest.Script{Tokens: tokens(60), Fail: openaitest.Hang, FailAfter: 4})
	srv := start(t, stuck, nil)
	id := ask(t, srv, "q")
	got := make(chan stream, 1)
	go func() { got <- follow(t, srv.URL, id, "", 0) }()
	testkit.WaitFor(t, "4 tokens", func() bool { return tokenEvents(t, srv.App.Hub().Broker(), id) == 4 })
	testkit.WaitFor(t, "the watcher", func() bool { return srv.App.Hub().TopicCounts()[chat.TopicPrefix+id] == 1 })

	srv.Stop()
	s := <-got
	if !s.ended || s.fail == nil {
		t.Fatalf("the stream ended %v with types %v, want it to end with an error event", s.ended, s.types)
	}
	if s.fail.Code != chat.CodeInterrupted || !strings.Contains(s.fail.Message, "shutting down") || s.fail.Text != strings.Join(tokens(4), "") {
		t.Fatalf("error event %+v, want code %q, the shutdown, and the 4 tokens", s.fail, chat.CodeInterrupted)
	}
}

// An answer that a crash left running (in the node's journal, its topic
// not finished) is ended when the server starts again on the same
// --data-dir: an error event, code "interrupted", with the text its
// history holds.
func TestCrashLeftoversAreInterrupted(t *testing.T) {
	dir := t.TempDir()
	const id = "abcdefghijklmnopqrstuvwxyz"
	b, err := bolt.Open(filepath.Join(dir, bolt.FileName), &bolt.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h := hub.New(b, nil)
	ctx := context.Background()
	j, err := journal.New(h, "local", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := j.Add(ctx, journal.Item{Kind: chat.JournalKind, ID: id, Data: json.RawMessage(`{"model":"demo-model","conversation":"c1"}`)}); err != nil {
		t.Fatal(err)
	}
	var seen pubsub.Position
	for _, tok := range []string{"Hello", ",", " wor"} {
		m := &pubsub.Message{Topics: []string{chat.TopicPrefix + id}, Type: chat.EventToken, Data: tok}
		if _, err := h.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		seen = m.Pos
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	srv := start(t, nil, func(c *config.Server) { c.Broker.DataDir = dir })
	s := follow(t, srv.URL, id, seen.String(), 0)
	if !s.ended || s.fail == nil || len(s.tokens) != 0 {
		t.Fatalf("resumed stream: types %v, want only the error event", s.types)
	}
	want := chat.Error{Message: s.fail.Message, Code: chat.CodeInterrupted, Text: "Hello, wor", Tokens: 3, Model: "demo-model", Conversation: "c1"}
	if *s.fail != want || !strings.Contains(s.fail.Message, "stopped") {
		t.Fatalf("error event %+v, want %+v", *s.fail, want)
	}
	// Finished: a reconnect at the end gets 204.
	if r := follow(t, srv.URL, id, s.finalID, 0); r.status != 204 {
		t.Fatalf("reconnect after the end: %d, want 204", r.status)
	}
}
