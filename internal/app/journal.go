package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/journal"
)

// newJournal returns the node's work journal (see internal/journal), or
// nil when the broker keeps nothing across restarts (memory without
// --data-dir): there is nothing to end after a crash then.
func (a *App) newJournal() (*journal.Journal, error) {
	b := &a.cfg.Broker
	if (b.URL == "" || b.URL == "memory") && b.DataDir == "" {
		return nil, nil
	}
	node, stable := b.NodeID, true
	if node == "" {
		node, stable = defaultNodeID(b.DataDir != "", a.cfg.Core.Addr)
	}
	j, err := journal.New(a.hub, node, a.log)
	if err != nil {
		return nil, err
	}
	if stable {
		a.log.Info("work journal", "node", node)
	} else {
		a.log.Warn("work journal under a random node name: after a crash, the chat answers and demo tasks this run leaves unfinished are not ended by the next start; set --node-id", "node", node)
	}
	return j, nil
}

// defaultNodeID names the node when --node-id is not set: "local" with the
// embedded store (its file is one node's alone), else the host name and the
// port of addr, stable across restarts. With port 0 (a new port each start)
// it is random, and reported not stable.
func defaultNodeID(durable bool, addr string) (string, bool) {
	if durable {
		return "local", true
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "herald"
	}
	if _, port, err := net.SplitHostPort(addr); err == nil && port != "" && port != "0" {
		return host + ":" + port, true
	}
	var b [6]byte
	rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:]), false
}

// openJournal ends the work the previous run of this node left (its
// journal's leftovers), before the server serves.
func (a *App) openJournal(ctx context.Context) {
	if a.journal == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, max(a.cfg.Core.ShutdownTimeout, 10*time.Second))
	defer cancel()
	left, err := a.journal.Open(ctx)
	if err != nil {
		a.log.Warn("work journal: cannot end the work a crash interrupted", "err", err)
		return
	}
	if len(left) > 0 {
		a.log.Info("work journal: the previous run stopped with work running; its streams were ended with an interrupted event", "items", len(left))
	}
}

// onDrain registers f to run when the App starts shutting down, before the
// streams end: a feature stops its running work there and publishes the
// final events its streams wait for. ctx bounds it (the shutdown timeout).
func (a *App) onDrain(f func(ctx context.Context)) { a.drainers = append(a.drainers, f) }

// drain runs the drainers (once, together), then stores the journal as it
// stands.
func (a *App) drain(ctx context.Context) {
	a.drainOnce.Do(func() {
		var wg sync.WaitGroup
		for _, f := range a.drainers {
			wg.Go(func() { f(ctx) })
		}
		wg.Wait()
		if err := a.journal.Close(ctx); err != nil {
			a.log.Warn("work journal: cannot store it at shutdown", "err", err)
		}
	})
}
