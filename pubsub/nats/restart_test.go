package nats_test

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
)

// embedded runs an in-process nats-server with JetStream on a fixed port
// and storage directory, so that it can be stopped and started again.
type embedded struct {
	t    *testing.T
	dir  string
	port int
	srv  *server.Server
}

func startEmbedded(t *testing.T) *embedded {
	t.Helper()
	e := &embedded{t: t, dir: t.TempDir(), port: server.RANDOM_PORT}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *embedded) start() {
	e.t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: e.port, JetStream: true, StoreDir: e.dir, NoLog: true, NoSigs: true})
	if err != nil {
		e.t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		e.t.Fatal("embedded nats-server not ready")
	}
	e.srv = srv
	e.port = srv.Addr().(*net.TCPAddr).Port
}

func (e *embedded) stop() {
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
		e.srv = nil
	}
}

func (e *embedded) url() string { return "nats://" + net.JoinHostPort("127.0.0.1", itoa(e.port)) }

func itoa(n int) string {
	b := []byte{}
	for n > 0 || len(b) == 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

func publish(t *testing.T, b pubsub.Broker, data string, topics ...string) *pubsub.Message {
	t.Helper()
	m := &pubsub.Message{Topics: topics, Data: data}
	if _, err := b.Publish(context.Background(), m); err != nil {
		t.Fatalf("Publish %q: %v", data, err)
	}
	return m
}

// TestRestartKeepsEpoch: a NATS server restarted with its storage keeps
// the stream: same epoch, history intact, listeners go on without a reset
// and publishing while it is down fails with ErrUnavailable.
func TestRestartKeepsEpoch(t *testing.T) {
	e := startEmbedded(t)
	b := open(t, e.url(), "RESTART", pubsub.Retention{})
	defer b.Close()
	h := pubsubtest.NewListener()
	pubsubtest.Listen(t, b, h)
	h.Settle(t)
	m1 := publish(t, b, "before", "r")
	h.Wait(t, "the first message", func() bool { return len(h.Messages()) == 1 })

	e.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := b.Publish(ctx, &pubsub.Message{Topics: []string{"r"}, Data: "while down"})
	if !errors.Is(err, pubsub.ErrUnavailable) {
		t.Fatalf("Publish while NATS is down: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 7*time.Second {
		t.Errorf("Publish while NATS is down took %v", d)
	}
	e.start()

	m2 := &pubsub.Message{Topics: []string{"r"}, Data: "after"}
	testkit.WaitWithin(t, 2*testkit.Timeout, "a publish to succeed after the restart", func() bool {
		_, err := b.Publish(context.Background(), m2)
		return err == nil
	})
	if m2.Pos.Epoch != m1.Pos.Epoch || m2.Pos.Offset <= m1.Pos.Offset {
		t.Fatalf("after the restart: %v, want the same epoch after %v", m2.Pos, m1.Pos)
	}
	h.Wait(t, "the message published after the restart", func() bool { return len(h.Messages()) == 2 })
	if len(h.Epochs()) != 0 {
		t.Errorf("HandleEpoch called %v on a restart that kept the stream", h.Epochs())
	}
	snap, err := b.Read(context.Background(), pubsub.Query{Topics: []string{"r"}, After: &pubsub.Position{Epoch: m1.Pos.Epoch}})
	if err != nil {
		t.Fatal(err)
	}
	if snap.EpochChanged || snap.Truncated || len(snap.Events) != 2 {
		t.Fatalf("history after the restart: %d events, EpochChanged=%v Truncated=%v; want 2, false, false", len(snap.Events), snap.EpochChanged, snap.Truncated)
	}
}

// TestStorageLost: a NATS server restarted without its storage has lost
// the stream: it is created again with a new epoch, and listeners are told.
func TestStorageLost(t *testing.T) {
	e := startEmbedded(t)
	b := open(t, e.url(), "LOST", pubsub.Retention{})
	defer b.Close()
	h := pubsubtest.NewListener()
	pubsubtest.Listen(t, b, h)
	h.Settle(t)
	m1 := publish(t, b, "before", "l")

	e.stop()
	if err := os.RemoveAll(e.dir); err != nil {
		t.Fatal(err)
	}
	e.start()
	h.Wait(t, "HandleEpoch", func() bool { return len(h.Epochs()) == 1 })
	if h.Epochs()[0] == m1.Pos.Epoch {
		t.Fatalf("HandleEpoch(%q): the old epoch", h.Epochs()[0])
	}
	m2 := publish(t, b, "after", "l")
	if m2.Pos.Epoch != h.Epochs()[0] {
		t.Fatalf("published at %v, want epoch %q", m2.Pos, h.Epochs()[0])
	}
	h.Wait(t, "the message of the new epoch", func() bool { return h.LastPos() == m2.Pos })
	snap, err := b.Read(context.Background(), pubsub.Query{Topics: []string{"l"}, After: &m1.Pos})
	if err != nil {
		t.Fatal(err)
	}
	if !snap.EpochChanged || len(snap.Events) != 1 || snap.Events[0].Data != "after" {
		t.Fatalf("resume from the old epoch: EpochChanged=%v, %d events; want true and the new message", snap.EpochChanged, len(snap.Events))
	}
}

// TestStreamDeleted: deleting the stream (on the shared server) is a new
// epoch for every node.
func TestStreamDeleted(t *testing.T) {
	needNATS(t)
	name := uniqueStream(t, natsURL())
	a := open(t, natsURL(), name, pubsub.Retention{})
	defer a.Close()
	b := open(t, natsURL(), name, pubsub.Retention{})
	defer b.Close()
	h := pubsubtest.NewListener()
	pubsubtest.Listen(t, b, h)
	h.Settle(t)
	old := publish(t, a, "old", "d")
	deleteStream(t, natsURL(), name)
	h.Wait(t, "HandleEpoch", func() bool { return len(h.Epochs()) == 1 })
	m := publish(t, a, "new", "d")
	if m.Pos.Epoch == old.Pos.Epoch || m.Pos.Epoch != h.Epochs()[0] {
		t.Fatalf("published at %v after the stream was deleted; old epoch %q, listener's new epoch %q", m.Pos, old.Pos.Epoch, h.Epochs()[0])
	}
	h.Wait(t, "the message of the new epoch", func() bool { return h.LastPos() == m.Pos })
}

// TestBucketLost: when the state bucket alone is gone, it is created again
// and retained state works on.
func TestBucketLost(t *testing.T) {
	needNATS(t)
	name := uniqueStream(t, natsURL())
	b := open(t, natsURL(), name, pubsub.Retention{})
	defer b.Close()
	nc, err := natsgo.Connect(natsURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := js.DeleteKeyValue(context.Background(), name+"_state"); err != nil {
		t.Fatal(err)
	}
	r := &pubsub.Message{Topics: []string{"k", "k2"}, Data: "state", Retain: true}
	if _, err := b.Publish(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	snap, err := b.Read(context.Background(), pubsub.Query{Topics: []string{"k2"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Retained) != 1 || snap.Retained[0].Data != "state" {
		t.Fatalf("retained after the bucket was lost: %+v", snap.Retained)
	}
}
