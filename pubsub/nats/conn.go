package nats

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// connState follows the NATS connection through the client's status
// events (not missed heartbeats): every change, lost or back, ends the
// current generation's context, so that what depends on the connection
// reacts at once. The listener starts a new consumer when the connection
// is back; a publish whose answer was lost with the connection is sent
// again when it is back (see send).
type connState struct {
	mu     sync.Mutex
	gen    context.Context
	cancel context.CancelFunc
	up     bool
}

func newConnState(up bool) *connState {
	c := &connState{up: up}
	c.gen, c.cancel = context.WithCancel(context.Background())
	return c
}

// current returns the generation's context (done at the next change) and
// whether the connection is up.
func (c *connState) current() (context.Context, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen, c.up
}

// change starts a new generation; it reports whether up changed.
func (c *connState) change(up bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := c.up != up
	c.cancel()
	c.gen, c.cancel = context.WithCancel(context.Background())
	c.up = up
	return changed
}

// stop ends the last generation.
func (c *connState) stop() {
	c.mu.Lock()
	c.cancel()
	c.mu.Unlock()
}

// watchConn follows the connection's status until ctx ends, and logs the
// changes once each.
func (b *Broker) watchConn(ctx context.Context) {
	ch := b.nc.StatusChanged(natsgo.CONNECTED, natsgo.DISCONNECTED, natsgo.RECONNECTING, natsgo.CLOSED)
	defer b.nc.RemoveStatusListener(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case st := <-ch:
			switch st {
			case natsgo.CONNECTED:
				if b.conn.change(true) {
					b.o.Logger.Info("nats: connection restored", "server", b.nc.ConnectedUrlRedacted())
				}
			case natsgo.CLOSED:
				b.conn.change(false)
			default:
				if b.conn.change(false) {
					b.o.Logger.Warn("nats: connection lost; reconnecting (publishes and new subscriptions fail with 503 meanwhile)")
				}
			}
		}
	}
}

// asyncErrors returns the client's handler of asynchronous errors (slow
// consumers, permission violations): they go to log, each kind at most
// once a minute with the number seen meanwhile.
func asyncErrors(log *slog.Logger) natsgo.ErrHandler {
	var (
		mu   sync.Mutex
		last = map[string]time.Time{}
		seen = map[string]int{}
	)
	return func(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
		if err == nil {
			return
		}
		key := err.Error()
		mu.Lock()
		seen[key]++
		n := seen[key]
		now := time.Now()
		if now.Sub(last[key]) < time.Minute {
			mu.Unlock()
			return
		}
		last[key], seen[key] = now, 0
		if len(last) > 64 {
			clear(last) // bounded: forget the kinds seen
		}
		mu.Unlock()
		args := []any{"err", err, "count", n}
		if sub != nil {
			args = append(args, "subject", sub.Subject)
		}
		log.Warn("nats: client error", args...)
	}
}

// errConnChanged ends a request whose connection was lost.
var errConnChanged = errors.New("nats: connection changed")

// send publishes msg. If the connection is lost while the request waits
// for JetStream's answer, the answer is lost too: send waits until the
// connection is back (or ctx ends) and sends it again. The message's
// Nats-Msg-Id, set here, makes JetStream store it once however often it is
// sent (within the stream's Duplicates window).
func (b *Broker) send(ctx context.Context, msg *natsgo.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if msg.Header.Get(natsgo.MsgIdHdr) == "" {
		msg.Header.Set(natsgo.MsgIdHdr, nuid.Next())
	}
	resent := false
	for {
		gen, _ := b.conn.current()
		actx, cancel := context.WithCancelCause(ctx)
		stop := context.AfterFunc(gen, func() { cancel(errConnChanged) })
		ack, err := b.js.PublishMsg(actx, msg, opts...)
		stop()
		lost := err != nil && errors.Is(context.Cause(actx), errConnChanged)
		cancel(nil)
		switch {
		case err == nil || ctx.Err() != nil:
			return ack, err
		case lost:
			if !b.waitUp(ctx) {
				return nil, err
			}
			resent = true
		case resent && errors.Is(err, natsgo.ErrNoResponders):
			// JetStream is still starting on the server that came back.
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(50 * time.Millisecond):
			}
		default:
			return ack, err
		}
	}
}

// waitUp waits until the connection is up; false if ctx ends first.
func (b *Broker) waitUp(ctx context.Context) bool {
	for {
		gen, up := b.conn.current()
		if up {
			return true
		}
		if b.closed.Load() {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-gen.Done():
		}
	}
}
