package nats_test

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/nats"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
)

// natsURL is the NATS server the tests use (override with HERALD_TEST_NATS).
func natsURL() string {
	if u := os.Getenv("HERALD_TEST_NATS"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// needNATS skips the test when NATS is absent, unless CI is set.
func needNATS(t testing.TB) {
	t.Helper()
	addr := strings.TrimPrefix(natsURL(), "nats://")
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("NATS is not reachable at %s (CI is set, so this fails): %v", addr, err)
	}
	t.Skipf("NATS is not reachable at %s and CI is unset: skipping (%v)", addr, err)
}

// uniqueStream returns a stream name no other test uses, and deletes the
// stream and its bucket on url when the test ends.
func uniqueStream(t testing.TB, url string) string {
	t.Helper()
	name := "HERALD_TEST_" + strings.ToUpper(pubsub.NewEpoch())
	t.Cleanup(func() { deleteStream(t, url, name) })
	return name
}

func deleteStream(t testing.TB, url, name string) {
	t.Helper()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Logf("cleanup: connect: %v", err)
		return
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = js.DeleteStream(ctx, name)
	_ = js.DeleteKeyValue(ctx, name+"_state")
}

func open(t testing.TB, url, stream string, r pubsub.Retention) *nats.Broker {
	t.Helper()
	b, err := nats.Open(context.Background(), url, &nats.Options{Stream: stream, Retention: r})
	if err != nil {
		t.Fatalf("nats.Open: %v", err)
	}
	return b
}

var (
	streamsMu sync.Mutex
	streams   = map[pubsub.Broker]string{}
)

// maxData is the largest message data the suite stores: NATS's default
// max_payload (1 MiB) bounds a message with its headers and encoding.
const maxData = 1<<20 - 1024

func TestConformance(t *testing.T) {
	needNATS(t)
	newBroker := func(t *testing.T, r pubsub.Retention) pubsub.Broker {
		name := uniqueStream(t, natsURL())
		b := open(t, natsURL(), name, r)
		streamsMu.Lock()
		streams[b] = name
		streamsMu.Unlock()
		return b
	}
	again := func(t *testing.T, b pubsub.Broker) pubsub.Broker {
		streamsMu.Lock()
		name := streams[b]
		streamsMu.Unlock()
		return open(t, natsURL(), name, pubsub.Retention{})
	}
	pubsubtest.Run(t, newBroker, &pubsubtest.Options{Peer: again, Reopen: again, CondOwnTopics: true, MaxData: maxData})
}
