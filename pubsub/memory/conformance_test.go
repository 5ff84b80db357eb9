package memory_test

import (
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
)

// TestConformance runs the broker conformance suite against the memory
// broker. It has no Peer (one process) and no Reopen (not durable).
func TestConformance(t *testing.T) {
	pubsubtest.Run(t, func(t *testing.T, r pubsub.Retention) pubsub.Broker {
		return memory.New(&memory.Options{Retention: r, SweepInterval: 50 * time.Millisecond})
	}, nil)
}
