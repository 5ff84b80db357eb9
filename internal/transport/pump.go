package transport

import (
	"context"
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/heraldpush/herald/internal/hub"
)

// Framing is a stream's wire form of events, for Pump.
type Framing interface {
	// Events appends evs, in order, to b in wire form (an encoder
	// memoizes each event's form on the event: once for all subscribers).
	// An event the stream does not show is left out.
	Events(b *Batch, evs []*hub.Event)
}

// Pump is the one subscription pump of every transport and face: it pops
// what c's subscription has queued and appends it to b through f. It
// reports whether the subscription is still open. When it has ended, what
// was queued is kept only if the end is graceful (hub.Graceful), and a
// slow consumer's cut-off is logged; the caller then ends the stream its
// protocol's way. The engine writes b with a deadline and cuts off a
// client that cannot take it in time (hub.Subscription.EndSlow).
func (c *Conn) Pump(b *Batch, f Framing) (open bool) {
	sub := c.Sub()
	if sub == nil {
		return true
	}
	var evs []*hub.Event
	evs, open = sub.Pop(b.evs[:0])
	if len(evs) > 0 && (open || hub.Graceful(sub.Err())) {
		n := b.events
		f.Events(b, evs)
		c.wrote += uint64(b.events - n)
	}
	clear(evs)
	b.evs = evs[:0]
	if !open && errors.Is(sub.Err(), hub.ErrSlowConsumer) {
		c.e.log.Info("slow subscriber cut off", "transport", c.e.name, "topics", sub.Topics())
	}
	return open
}

// OneWay is what a one-way stream (SSE) does in a turn, given its framing:
// the expiry notice and the end when the credentials expired; otherwise
// the queued events, a keep-alive when one is due and nothing else is
// written, and the stream's end once the subscription has ended.
func OneWay(c *Conn, b *Batch, due Due, f OneWayFraming) Next {
	if due&DueExpired != 0 {
		f.Expired(b)
		return End
	}
	open := c.Pump(b, f)
	if due&DueKeepAlive != 0 && b.Empty() && open {
		f.KeepAlive(b)
	}
	if !open {
		return f.End(b, c.Sub().Err())
	}
	return Continue
}

// OneWayFraming is the wire form of a one-way stream, for OneWay.
type OneWayFraming interface {
	Framing
	// KeepAlive appends what keeps an idle stream open.
	KeepAlive(b *Batch)
	// Expired appends the notice that the credentials expired (see
	// AuthExpiredEventType) and the stream's end.
	Expired(b *Batch)
	// End appends the stream's end for the reason the subscription ended
	// (hub.Subscription.Err) and says how the connection ends (End, or
	// Abort to cut it without a clean end).
	End(b *Batch, err error) Next
}

// ServeStandard serves a stream from the calling goroutine, on w, until it
// ends or ctx ends: the standard path, for a response whose connection
// cannot be taken over (HTTP/2, TLS, HTTP/1.0). It writes head, then what
// proto's turns produce, each batch with the write deadline and a flush;
// it closes sub at the end. It reports whether the stream was aborted (a
// turn returned Abort): the caller then aborts the response
// (panic(http.ErrAbortHandler)).
func (e *Engine) ServeStandard(ctx context.Context, w http.ResponseWriter, sub *hub.Subscription, proto Protocol, expires time.Time, head []byte) (aborted bool) {
	c := &Conn{e: e, proto: proto}
	c.sub.Store(sub)
	if !expires.IsZero() {
		c.expires.Store(clockAt(expires))
	}
	if e.gauge != nil {
		e.gauge.Inc()
		defer e.gauge.Dec()
	}
	defer func() {
		sub.Close()
		proto.Closed(c)
		e.settle(c)
	}()
	rc := http.NewResponseController(w)
	write := func(parts [][]byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(e.writeTimeout))
		var err error
		for _, p := range parts {
			if _, err = w.Write(p); err != nil {
				break
			}
		}
		if err == nil {
			err = rc.Flush()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			sub.EndSlow() // the client did not take the write in time
		}
		return err == nil
	}
	if !write([][]byte{head}) {
		return false
	}
	ka := time.NewTicker(e.keepAlive)
	defer ka.Stop()
	var expired <-chan time.Time
	if !expires.IsZero() {
		t := time.NewTimer(time.Until(expires))
		defer t.Stop()
		expired = t.C
	}
	b := &Batch{}
	for {
		var due Due
		select {
		case <-ctx.Done():
			return false
		case <-ka.C:
			due = DueKeepAlive
		case <-expired:
			c.expDue.Store(true)
		case <-sub.Ready():
		}
		due |= c.due()
		next := proto.Turn(c, b, due)
		if next == Abort {
			b.reset(false)
			return true
		}
		if !b.Empty() {
			events := b.events > 0
			ok := write(b.parts)
			c.bytes += int64(b.payload)
			b.reset(false)
			if !ok {
				return false
			}
			if events {
				ka.Reset(e.keepAlive)
			}
		}
		if next == End {
			return false
		}
	}
}
