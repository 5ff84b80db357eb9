package demo_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/demo"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/journal"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/bolt"
)

// A graceful shutdown ends a running task with INTERRUPTED: on the demo
// topic (retained) and as the task's final event, which its stream gets
// before it ends.
func TestShutdownInterruptsTasks(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) { c.Demo.TaskInterval = time.Hour })
	main := open(t, srv.URL+"/sse/subscribe", "")
	expectEvent(t, main.Next(t), "CONNECTED", demo.ConnectedText)
	n := startTask(t, srv.URL)
	own := open(t, fmt.Sprintf("%s/sse/subscribe?task=%d", srv.URL, n), "")
	expectEvent(t, own.Next(t), "CONNECTED", demo.ConnectedText)

	srv.Stop()
	expectEvent(t, own.Next(t), demo.TypeInterrupted, demo.ShutdownText)
	expectEnd(t, own)
	expectEvent(t, main.Next(t), demo.TypeInterrupted, demo.ShutdownText)
}

// Task numbers are positions in the log: after a restart on the same
// --data-dir a new task has a number above every earlier one, not 1 beside
// a stale task.
func TestTaskNumbersGrowAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	withDir := func(c *config.Server) {
		c.Broker.DataDir = dir
		c.Demo.TaskInterval = time.Hour
	}
	srv := apptest.Start(t, withDir)
	first := startTask(t, srv.URL)
	second := startTask(t, srv.URL)
	srv.Stop()
	srv = apptest.Start(t, withDir)
	third := startTask(t, srv.URL)
	if !(first < second && second < third) {
		t.Fatalf("task numbers %d, %d, then %d after a restart: want them growing", first, second, third)
	}
	// The interrupted tasks are finished: a page following them is told
	// so (their INTERRUPTED event, then the end).
	for _, n := range []int{first, second} {
		s := open(t, fmt.Sprintf("%s/sse/subscribe?task=%d", srv.URL, n), "")
		if ev := s.Next(t); ev.Type != demo.TypeConnected {
			t.Fatalf("task %d: first event %+v, want the greeting", n, ev)
		}
		if ev := s.Next(t); ev.Type != demo.TypeInterrupted {
			t.Errorf("task %d after the restart: %+v, want INTERRUPTED", n, ev)
		}
		expectEnd(t, s)
	}
}

// A task that a crash left running (it is in the node's journal, its
// topic not finished) gets an INTERRUPTED final event when the server
// starts again on the same --data-dir.
func TestCrashLeftoversAreInterrupted(t *testing.T) {
	dir := t.TempDir()
	// What a crashed run leaves: task 5 at 30%, in the journal.
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
	if err := j.Add(ctx, journal.Item{Kind: demo.JournalKind, ID: "5"}); err != nil {
		t.Fatal(err)
	}
	progress := &pubsub.Message{Topics: []string{demo.Topic, demo.TaskTopic(5)}, Type: demo.TypeProgress, Data: percent(30), Retain: true}
	if _, err := h.Publish(ctx, progress); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	srv := apptest.Start(t, func(c *config.Server) { c.Broker.DataDir = dir })
	// The page that saw 30% reconnects.
	s := open(t, srv.URL+"/sse/subscribe?task=5", progress.Pos.String())
	expectEvent(t, s.Next(t), "CONNECTED", demo.ConnectedText)
	expectEvent(t, s.Next(t), demo.TypeInterrupted, demo.CrashText)
	expectEnd(t, s)
	// The demo topic's state says so too.
	m := open(t, srv.URL+"/sse/subscribe", "")
	expectEvent(t, m.Next(t), "CONNECTED", demo.ConnectedText)
	expectEvent(t, m.Next(t), demo.TypeInterrupted, demo.CrashText)
}
