package redis_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
	"github.com/heraldpush/herald/pubsub/redis"
)

// TestDataLoss: when Redis loses Herald's keys, the log gets a new epoch,
// every node's listener is told (HandleEpoch), publishing goes on in the new
// epoch, and a resuming client's snapshot says EpochChanged.
func TestDataLoss(t *testing.T) {
	needRedis(t)
	p := uniquePrefix(t)
	a := open(t, p, pubsub.Retention{})
	defer a.Close()
	b := open(t, p, pubsub.Retention{})
	defer b.Close()
	hb := pubsubtest.NewListener()
	pubsubtest.Listen(t, b, hb)

	ctx := context.Background()
	old := a.Epoch()
	m1 := &pubsub.Message{Topics: []string{"x"}, Data: "1"}
	hb.Settle(t)
	if _, err := a.Publish(ctx, m1); err != nil {
		t.Fatal(err)
	}
	hb.Wait(t, "the first message", func() bool { return len(hb.Messages()) == 1 })

	deleteKeys(t, p) // Redis lost everything (FLUSHDB, restart without persistence)

	m2 := &pubsub.Message{Topics: []string{"x"}, Data: "2"}
	if _, err := a.Publish(ctx, m2); err != nil {
		t.Fatal(err)
	}
	if m2.Pos.Epoch == old || m2.Pos.Offset != 1 {
		t.Fatalf("first message after the loss at %v, want offset 1 of a new epoch (old %q)", m2.Pos, old)
	}
	hb.Wait(t, "HandleEpoch and the message of the new epoch", func() bool {
		return len(hb.Epochs()) == 1 && len(hb.Messages()) == 2
	})
	if hb.Epochs()[0] != m2.Pos.Epoch || hb.Messages()[1].Pos != m2.Pos {
		t.Fatalf("epochs %v, messages %v %v; want epoch %q then %v", hb.Epochs(), hb.Messages()[0].Pos, hb.Messages()[1].Pos, m2.Pos.Epoch, m2.Pos)
	}
	if b.Epoch() != m2.Pos.Epoch {
		t.Errorf("node b Epoch() = %q, want %q", b.Epoch(), m2.Pos.Epoch)
	}
	snap, err := b.Read(ctx, pubsub.Query{Topics: []string{"x"}, After: &m1.Pos})
	if err != nil {
		t.Fatal(err)
	}
	if !snap.EpochChanged || len(snap.Events) != 1 || snap.Events[0].Data != "2" {
		t.Fatalf("resume from the old epoch: EpochChanged=%v events=%d, want true and the new message", snap.EpochChanged, len(snap.Events))
	}
}

// TestDataLossWithoutPublish: an idle node notices a lost log by itself.
func TestDataLossWithoutPublish(t *testing.T) {
	needRedis(t)
	p := uniquePrefix(t)
	b := open(t, p, pubsub.Retention{})
	defer b.Close()
	h := pubsubtest.NewListener()
	pubsubtest.Listen(t, b, h)
	h.Settle(t)
	old := b.Epoch()
	deleteKeys(t, p)
	h.Wait(t, "HandleEpoch", func() bool { return len(h.Epochs()) == 1 })
	if h.Epochs()[0] == old || b.Epoch() != h.Epochs()[0] {
		t.Fatalf("HandleEpoch(%q), Epoch() %q; old epoch %q", h.Epochs()[0], b.Epoch(), old)
	}
}

// TestUnavailable: with Redis unreachable, opening and publishing fail with
// ErrUnavailable rather than hanging or losing the message silently.
func TestUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = redis.Open(ctx, "redis://"+addr+"/0?max_retries=0&dial_timeout=1s", nil)
	if !errors.Is(err, pubsub.ErrUnavailable) {
		t.Fatalf("Open on a closed port: %v, want ErrUnavailable", err)
	}
}

// TestGap: a node that missed messages because the live stream was trimmed
// past them (it was stalled for longer than the live window lasts) tells
// its handler to resync with HandleEpoch(unchanged epoch).
func TestGap(t *testing.T) {
	needRedis(t)
	p := uniquePrefix(t)
	openSmall := func() *redis.Broker {
		b, err := redis.Open(context.Background(), "redis://"+redisAddr()+"/0", &redis.Options{Prefix: p, LiveWindow: 4 << 10})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pub := openSmall()
	defer pub.Close()
	sub := openSmall()
	defer sub.Close()
	ctx := context.Background()
	h := &slowHandler{Listener: pubsubtest.NewListener(), gate: make(chan struct{}), blocked: make(chan struct{})}
	pubsubtest.Listen(t, sub, h)
	h.Settle(t)
	// The listener blocks in HandleMessage of "block" while far more than
	// the live window is published: the stream drops what it has not read.
	if _, err := pub.Publish(ctx, &pubsub.Message{Topics: []string{"g"}, Data: "block"}); err != nil {
		t.Fatal(err)
	}
	<-h.blocked
	big := make([]byte, 1000)
	for i := range 40 {
		if _, err := pub.Publish(ctx, &pubsub.Message{Topics: []string{"g"}, Data: string(big)}); err != nil {
			t.Fatal(i, err)
		}
	}
	close(h.gate)
	h.Wait(t, "a resync (HandleEpoch with the same epoch)", func() bool { return len(h.Epochs()) > 0 })
	if h.Epochs()[0] != sub.Epoch() {
		t.Fatalf("HandleEpoch(%q), want the unchanged epoch %q", h.Epochs()[0], sub.Epoch())
	}
}

// slowHandler blocks on the message "block" until gate is closed.
type slowHandler struct {
	*pubsubtest.Listener
	gate    chan struct{}
	blocked chan struct{}
}

func (h *slowHandler) HandleMessage(m *pubsub.Message) {
	if m.Data == "block" {
		close(h.blocked)
		<-h.gate
	}
	h.Listener.HandleMessage(m)
}
