package pubsubtest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
)

// faultEnv selects the fault TestFaulty injects; TestSuiteCatchesFaults sets
// it in a child process.
const faultEnv = "PUBSUBTEST_FAULT"

// faulty wraps a memory broker and breaks one promise of the contract.
type faulty struct {
	*memory.Broker
	fault string
}

type faultyHandler struct {
	pubsub.Handler
	fault string
}

func (h faultyHandler) HandleMessage(m *pubsub.Message) {
	h.Handler.HandleMessage(m)
	if h.fault == "duplicate-live" {
		h.Handler.HandleMessage(m)
	}
}

// HandleStart passes the start on, unless the fault is to forget it.
func (h faultyHandler) HandleStart(head pubsub.Position) {
	if sh, ok := h.Handler.(pubsub.StartHandler); ok && h.fault != "no-start" {
		sh.HandleStart(head)
	}
}

func (b *faulty) Listen(ctx context.Context, h pubsub.Handler) error {
	switch b.fault {
	case "leak":
		go func() { select {} }() // never ends
	case "listen-error":
		err := b.Broker.Listen(ctx, faultyHandler{h, b.fault})
		if err == nil {
			err = ctx.Err()
		}
		return err
	}
	return b.Broker.Listen(ctx, faultyHandler{h, b.fault})
}

func (b *faulty) Read(ctx context.Context, q pubsub.Query) (pubsub.Snapshot, error) {
	snap, err := b.Broker.Read(ctx, q)
	switch b.fault {
	case "hide-truncation":
		snap.Truncated = false
	case "gap":
		// Loses the newest message of a snapshot taken while others come in.
		if n := len(snap.Events); n > 1 && snap.Events[n-1].Pos == snap.Head {
			snap.Events = snap.Events[:n-1]
		}
	case "late-head":
		// Reports a Head older than the events it returns: duplicates live.
		if snap.Head.Offset > 0 && len(snap.Events) > 0 {
			snap.Head.Offset--
		}
	case "no-epoch-check":
		snap.EpochChanged = false
	case "no-retained-after-reset":
		if q.After != nil {
			snap.Retained = nil
		}
	}
	return snap, err
}

func (b *faulty) Publish(ctx context.Context, m *pubsub.Message) (pubsub.Position, error) {
	if b.fault == "ignore-context" {
		ctx = context.WithoutCancel(ctx)
	}
	return b.Broker.Publish(ctx, m)
}

// TestFaulty runs the suite against a broken broker when faultEnv is set.
func TestFaulty(t *testing.T) {
	fault := os.Getenv(faultEnv)
	if fault == "" {
		t.Skip("run by TestSuiteCatchesFaults")
	}
	pubsubtest.Run(t, func(t *testing.T, r pubsub.Retention) pubsub.Broker {
		return &faulty{Broker: memory.New(&memory.Options{Retention: r, SweepInterval: 50 * time.Millisecond}), fault: fault}
	}, &pubsubtest.Options{Wait: 2 * time.Second})
}

// TestSuiteCatchesFaults checks that the suite fails, in the expected
// subtest, for each kind of broken broker.
func TestSuiteCatchesFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	for _, tc := range []struct {
		fault   string
		subtest string
	}{
		{"duplicate-live", "Ordering"},
		{"hide-truncation", "TruncationMaxEvents"},
		{"gap", "HandOver"},
		{"late-head", "HandOver"},
		{"no-epoch-check", "SnapshotEpochChanged"},
		{"no-retained-after-reset", "RetainedAfterReset"},
		{"ignore-context", "Cancellation"},
		{"listen-error", "ListenCancel"},
		{"no-start", "ListenAgain"},
		{"leak", "Leaks"},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestFaulty$/^"+tc.subtest+"$", "-test.count=1")
			cmd.Env = append(os.Environ(), faultEnv+"="+tc.fault)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a broker with fault %q:\n%s", tc.fault, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestFaulty/"+tc.subtest) {
				t.Fatalf("fault %q: subtest %s did not fail:\n%s", tc.fault, tc.subtest, out)
			}
		})
	}
}

// TestMemory runs the suite against the unmodified memory broker through
// the same wrapper, so that the faults above are the only difference.
func TestMemory(t *testing.T) {
	pubsubtest.Run(t, func(t *testing.T, r pubsub.Retention) pubsub.Broker {
		return &faulty{Broker: memory.New(&memory.Options{Retention: r, SweepInterval: 50 * time.Millisecond})}
	}, nil)
}
