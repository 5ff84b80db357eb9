package dssub_test

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/heraldpush/herald/pubsub"
	natsbroker "github.com/heraldpush/herald/pubsub/nats"
	redisbroker "github.com/heraldpush/herald/pubsub/redis"
)

// deployment opens each node's own broker client of one deployment.
type deployment struct {
	name string
	open func(t *testing.T) func(t *testing.T) pubsub.Broker
}

// need skips the test when a service is absent, unless CI is set.
func need(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not reachable (CI is set, so this fails): %v", addr, err)
	}
	t.Skipf("%s is not reachable and CI is unset: skipping (%v)", addr, err)
}

// deployments: one memory broker shared by the nodes, and Redis and NATS
// JetStream with a client per node, as separate processes have.
func deployments() []deployment {
	return []deployment{
		{"memory", func(t *testing.T) func(t *testing.T) pubsub.Broker {
			b := newBroker(t)
			return func(*testing.T) pubsub.Broker { return b }
		}},
		{"redis", func(t *testing.T) func(t *testing.T) pubsub.Broker {
			need(t, "127.0.0.1:6379")
			prefix := "herald-dssub-" + pubsub.NewEpoch()
			return func(t *testing.T) pubsub.Broker {
				b, err := redisbroker.Open(context.Background(), "redis://127.0.0.1:6379/0", &redisbroker.Options{Prefix: prefix})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { b.Close() })
				return b
			}
		}},
		{"nats", func(t *testing.T) func(t *testing.T) pubsub.Broker {
			need(t, "127.0.0.1:4222")
			stream := "HERALD_DSSUB_" + pubsub.NewEpoch()
			return func(t *testing.T) pubsub.Broker {
				b, err := natsbroker.Open(context.Background(), "nats://127.0.0.1:4222", &natsbroker.Options{Stream: stream, Memory: true})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { b.Close() })
				return b
			}
		}},
	}
}
