package nats

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// leaseKey is the state bucket's key of the trimmer's lease. Topic keys
// start with "r." or "x.", so it cannot be one.
const leaseKey = "lease.trimmer"

// leaseTTL is how long a lease that is not renewed stays its holder's:
// the holder renews it every leaseTTL/3, and another node takes it over
// once it has seen the same revision for leaseTTL on its own clock (no
// node compares another's clock).
const leaseTTL = 3 * time.Second

// lease elects one node of a stream to run the history trimmer, by
// compare-and-set on one key of the state bucket: the key holds the
// holder's id, and its revision changes with each renewal. The trimmer's
// purges are idempotent and every trimmer computes them from the same
// stream, so two holders at once (a holder that stalled past leaseTTL and
// has not noticed yet) only repeat work; the lease saves the server the
// other nodes' consumers, it does not make the bound correct.
type lease struct {
	b       *Broker
	id      string
	ttl     time.Duration
	holding atomic.Bool // for tests and logs
}

func newLease(b *Broker) *lease {
	return &lease{b: b, id: nuid.Next(), ttl: leaseTTL}
}

// hold waits until this node holds the lease. It returns a context that
// ends when the lease is lost (a renewal refused, or none succeeded for
// the lease's TTL) or ctx ends, and a function that stops renewing it and,
// if it is still held, gives it up at once so that another node need not
// wait for the TTL. It returns nil if ctx ended first.
func (l *lease) hold(ctx context.Context) (context.Context, func()) {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	var (
		seenRev uint64
		seenAt  time.Time
	)
	for {
		if rev, ok := l.try(ctx, &seenRev, &seenAt); ok {
			return l.renew(ctx, rev)
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-t.C:
		}
	}
}

// try takes the lease if it is free, given up, or has kept the revision
// seen first at *seenAt for the TTL; it returns the revision written.
func (l *lease) try(ctx context.Context, seenRev *uint64, seenAt *time.Time) (uint64, bool) {
	cctx, cancel := context.WithTimeout(ctx, l.ttl)
	defer cancel()
	entry, err := l.b.kvGet(cctx, leaseKey)
	_, kv, _ := l.b.current()
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		rev, err := kv.Create(cctx, leaseKey, []byte(l.id))
		return rev, err == nil
	case err != nil:
		return 0, false
	case string(entry.Value()) != l.id && entry.Revision() != *seenRev:
		*seenRev, *seenAt = entry.Revision(), time.Now()
		return 0, false
	case string(entry.Value()) != l.id && time.Since(*seenAt) < l.ttl:
		return 0, false
	}
	// Ours (from before a lost renewal), or not renewed for the TTL.
	rev, err := kv.Update(cctx, leaseKey, []byte(l.id), entry.Revision())
	return rev, err == nil
}

// renew keeps the lease of revision rev until it is lost or ctx ends; see
// hold.
func (l *lease) renew(ctx context.Context, rev uint64) (context.Context, func()) {
	l.holding.Store(true)
	hctx, cancel := context.WithCancel(ctx)
	var (
		wg   sync.WaitGroup
		lost atomic.Bool
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		renewed := time.Now()
		for {
			select {
			case <-hctx.Done():
				return
			case <-t.C:
			}
			_, kv, _ := l.b.current()
			cctx, ccancel := context.WithTimeout(hctx, l.ttl/3)
			next, err := kv.Update(cctx, leaseKey, []byte(l.id), rev)
			ccancel()
			switch {
			case err == nil:
				rev, renewed = next, time.Now()
			case errors.Is(err, jetstream.ErrKeyExists) || isWrongLast(err) || errors.Is(err, jetstream.ErrKeyNotFound):
				lost.Store(true) // another node holds it now
				return
			case hctx.Err() == nil && time.Since(renewed) >= l.ttl:
				lost.Store(true) // others may have taken it over
				return
			}
		}
	}()
	release := func() {
		cancel()
		wg.Wait()
		l.holding.Store(false)
		if lost.Load() {
			return
		}
		_, kv, _ := l.b.current()
		dctx, dcancel := context.WithTimeout(context.Background(), time.Second)
		defer dcancel()
		_ = kv.Delete(dctx, leaseKey, jetstream.LastRevision(rev))
	}
	return hctx, release
}
