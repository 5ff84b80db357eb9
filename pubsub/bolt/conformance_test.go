package bolt_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/bolt"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
)

// TestConformance runs the broker conformance suite against the bolt
// broker, including reopening the same file as a restarted server would.
func TestConformance(t *testing.T) {
	retentions := make(map[*bolt.Broker]pubsub.Retention)
	open := func(t *testing.T, path string, r pubsub.Retention) *bolt.Broker {
		b, err := bolt.Open(path, &bolt.Options{Retention: r, SweepInterval: 50 * time.Millisecond, Logger: quietLogger()})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		retentions[b] = r
		return b
	}
	pubsubtest.Run(t, func(t *testing.T, r pubsub.Retention) pubsub.Broker {
		return open(t, filepath.Join(t.TempDir(), "herald.db"), r)
	}, &pubsubtest.Options{
		Reopen: func(t *testing.T, old pubsub.Broker) pubsub.Broker {
			ob := old.(*bolt.Broker)
			return open(t, ob.Path(), retentions[ob])
		},
	})
}
