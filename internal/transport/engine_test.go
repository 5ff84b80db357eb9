package transport_test

import (
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/internal/transport"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

// lines is a one-way protocol that writes each event's id and data.
type lines struct{}

func (lines) Turn(c *transport.Conn, b *transport.Batch, due transport.Due) transport.Next {
	return transport.OneWay(c, b, due, lines{})
}
func (lines) Closed(*transport.Conn) {}
func (lines) Events(b *transport.Batch, evs []*hub.Event) {
	for _, ev := range evs {
		p := ev.ID() + "\n"
		if ev.Kind == hub.KindMessage {
			p = ev.ID() + " " + ev.Msg.Data + "\n"
		}
		b.Event([]byte(p), len(p))
	}
}
func (lines) KeepAlive(*transport.Batch)                 {}
func (lines) Expired(*transport.Batch)                   {}
func (lines) End(*transport.Batch, error) transport.Next { return transport.End }

// TestSlowCutOffEndsBlockedWrite: a subscriber whose write is blocked (it
// stopped reading) and whom the hub then cuts off as a slow consumer (its
// queue overflowed) loses its connection at once, not when the write
// timeout (an hour here) ends the blocked write.
func TestSlowCutOffEndsBlockedWrite(t *testing.T) {
	b := memory.New(&memory.Options{Epoch: "ep"})
	h := hub.New(b, &hub.Options{QueueBytes: 16 << 10, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { h.Run(ctx); close(ran) }()
	t.Cleanup(func() { h.Close(); cancel(); <-ran; b.Close() })

	e := transport.NewEngine(transport.Options{Name: "test", KeepAlive: time.Hour, WriteTimeout: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	sub, err := h.Subscribe(context.Background(), hub.Request{Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	// A pipe has no socket: every write goes to a goroutine of its own
	// (flush), and blocks until the client reads, which it never does.
	server, client := net.Pipe()
	t.Cleanup(func() { client.Close() })
	if !e.Serve(transport.ConnOptions{Conn: server, Request: httptest.NewRequest("GET", "/", nil), Sub: sub, Proto: lines{}}) {
		t.Fatal("Serve refused the connection")
	}
	data := strings.Repeat("x", 1024)
	for i := 0; h.Stats().SlowDisconnects == 0; i++ {
		if i == 1000 {
			t.Fatal("1,000 events of 1 KiB did not overflow a 16 KiB queue")
		}
		if _, err := h.Publish(context.Background(), &pubsub.Message{Topics: []string{"t"}, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, "the slow subscriber's connection to end", func() bool { return e.Len() == 0 })
	if n := h.TopicCounts()["t"]; n != 0 {
		t.Fatalf("%d subscribers left on the topic", n)
	}
}
