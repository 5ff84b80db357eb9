package shards_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	natsbroker "github.com/heraldpush/herald/pubsub/nats"
)

// natsVariant is one way of appending to JetStream whose server CPU per
// message TestMeasureNATSVariants measures.
type natsVariant struct {
	name string
	// herald: the stream config Herald makes (MaxMsgsPerSubject 1,000,
	// MaxAge 1 h, a 2-minute duplicate window); otherwise JetStream's
	// defaults (no limits, the default 2-minute duplicate window).
	herald   bool
	subjects int  // distinct subjects the messages go to, in turn
	msgID    bool // a Nats-Msg-Id on each message
	expect   bool // Nats-Expected-Last-Subject-Sequence (and Nats-Expected-Stream)
	// expectStream: Nats-Expected-Last-Sequence (the stream's, not the
	// subject's) and Nats-Expected-Stream: one publisher predicts each
	// message's sequence.
	expectStream bool
	// expectMsgID: Nats-Expected-Last-Msg-Id (the stream's last message's
	// id: the message sent before), with a Nats-Msg-Id on each message.
	expectMsgID bool
	// maxBytes: the stream's own byte limit (JetStream evicts the oldest
	// messages): the plainest append at a byte bound.
	maxBytes int64
	prev     bool // Herald-Prev
	// consumer: "" none, "headers" an ordered headers-only consumer (as
	// Herald's trimmer), "full" an ordered consumer (as a node's listener),
	// "both".
	consumer string
}

// TestMeasureNATSVariants measures, on a nats-server of its own, the server
// CPU per message of JetStream async publishes with what Herald adds to the
// plainest one taken a piece at a time (issue 22, item 5): the duplicate
// window's Nats-Msg-Id, the per-subject chain, Herald's headers, the
// stream's limits, the consumers each node runs. Rounds are interleaved so
// that the machine's load spreads over all variants; it reports each
// variant's median. It only reports: run it with HERALD_MEASURE=1
// (HERALD_NATS_SERVER picks another nats-server binary).
func TestMeasureNATSVariants(t *testing.T) {
	if os.Getenv("HERALD_MEASURE") == "" {
		t.Skip("a measurement: set HERALD_MEASURE=1 to run it")
	}
	const (
		events = 20000
		rounds = 5
	)
	url, pid := startNATS(t)
	ctx := context.Background()
	nc, err := natsgo.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	variants := []natsVariant{
		{name: "plain, 100 subjects", subjects: 100},
		{name: "plain, 1 subject", subjects: 1},
		{name: "+ Nats-Msg-Id", subjects: 100, msgID: true},
		{name: "+ expected last subject seq", subjects: 100, expect: true},
		{name: "+ expected last stream seq (not subject)", subjects: 100, expectStream: true},
		{name: "+ Msg-Id + expected last msg id (not subject)", subjects: 100, msgID: true, expectMsgID: true},
		{name: "+ Msg-Id + expected", subjects: 100, msgID: true, expect: true},
		{name: "+ Msg-Id + expected + Herald-Prev", subjects: 100, msgID: true, expect: true, prev: true},
		{name: "Herald limits, plain", herald: true, subjects: 100},
		{name: "plain, stream MaxBytes 1 MiB (JetStream evicts)", subjects: 100, maxBytes: 1 << 20},
		{name: "Herald limits, all headers", herald: true, subjects: 100, msgID: true, expect: true, prev: true},
		{name: "plain + headers-only consumer", subjects: 100, consumer: "headers"},
		{name: "plain + full consumer", subjects: 100, consumer: "full"},
		{name: "plain + both consumers", subjects: 100, consumer: "both"},
		{name: "Herald limits, all headers, both consumers", herald: true, subjects: 100, msgID: true, expect: true, prev: true, consumer: "both"},
	}
	data := strings.Repeat("x", 100)
	cpu := make([][]float64, len(variants))
	for r := range rounds {
		for i, v := range variants {
			stream := fmt.Sprintf("V%d_%d", i, r)
			cfg := jetstream.StreamConfig{Name: stream, Subjects: []string{stream + ".>"}, Storage: jetstream.FileStorage}
			if v.herald {
				cfg.MaxMsgsPerSubject, cfg.MaxAge, cfg.Duplicates = 1000, time.Hour, 2*time.Minute
			}
			if v.maxBytes > 0 {
				cfg.MaxBytes = v.maxBytes
			}
			s, err := js.CreateStream(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var seen []*atomic.Uint64 // per consumer, the last sequence it got
			var stops []func()
			for _, kind := range []string{"headers", "full"} {
				if v.consumer != kind && v.consumer != "both" {
					continue
				}
				cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{HeadersOnly: kind == "headers"})
				if err != nil {
					t.Fatal(err)
				}
				it, err := cons.Messages()
				if err != nil {
					t.Fatal(err)
				}
				stops = append(stops, it.Stop)
				got := new(atomic.Uint64)
				seen = append(seen, got)
				go func() {
					for {
						m, err := it.Next()
						if err != nil {
							return
						}
						if md, err := m.Metadata(); err == nil {
							got.Store(md.Sequence.Stream)
						}
					}
				}()
			}
			last := make([]uint64, v.subjects)
			var streamLast uint64 // the stream's last sequence (expectStream)
			var lastID string     // the last message's Nats-Msg-Id (expectMsgID)
			c0 := cpuOf(t, pid)
			for n := 0; n < events; n += 100 {
				futs := make([]jetstream.PubAckFuture, 100)
				for j := range 100 {
					k := (n + j) % v.subjects
					h := natsgo.Header{}
					var opts []jetstream.PublishOpt
					id := "herald:" + nuid.Next()
					if v.msgID {
						h.Set(natsgo.MsgIdHdr, id)
					}
					if v.expectMsgID {
						if lastID != "" {
							opts = append(opts, jetstream.WithExpectStream(stream), jetstream.WithExpectLastMsgID(lastID))
						}
						lastID = id
					}
					if v.prev {
						h.Set("Herald-Prev", strconv.FormatUint(last[k], 10))
					}
					if v.expect {
						opts = append(opts, jetstream.WithExpectStream(stream), jetstream.WithExpectLastSequencePerSubject(last[k]))
					}
					if v.expectStream {
						opts = append(opts, jetstream.WithExpectStream(stream), jetstream.WithExpectLastSequence(streamLast+uint64(j)))
					}
					futs[j], err = js.PublishMsgAsync(&natsgo.Msg{Subject: fmt.Sprint(stream, ".t", k), Header: h, Data: []byte(data)}, opts...)
					if err != nil {
						t.Fatal(err)
					}
					if v.expect && v.subjects == 1 {
						// One subject: each message must wait for the one
						// before it to know its sequence.
						last[k] = ackOf(t, futs[j]).Sequence
					}
				}
				for j, f := range futs {
					seq := ackOf(t, f).Sequence
					if v.subjects > 1 {
						last[(n+j)%v.subjects] = seq
					}
					streamLast = seq
				}
			}
			for _, got := range seen {
				if !testkit.Within(30*time.Second, func() bool { return got.Load() >= events }) {
					t.Fatalf("%s: a consumer got %d of %d messages", v.name, got.Load(), events)
				}
			}
			c1 := cpuOf(t, pid)
			for _, stop := range stops {
				stop()
			}
			cpu[i] = append(cpu[i], float64((c1-c0).Nanoseconds())/1000/events)
			if err := js.DeleteStream(ctx, stream); err != nil {
				t.Fatal(err)
			}
		}
	}
	base := median(cpu[0])
	for i, v := range variants {
		m := median(cpu[i])
		t.Logf("%-46s %6.1f µs per message (%.2f×) rounds %.1f", v.name, m, m/base, cpu[i])
	}

	// Herald's own publishes on the same server, for the same comparison,
	// rounds interleaved. With a byte bound the trimmer sleeps while the
	// stream holds less than half of it (20,000 messages hold ≈ 5 MB: a
	// 256 MiB bound); with a 1 MiB bound it follows the stream and purges.
	// Two nodes (two connections) publishing on the same topics at once
	// use the per-subject chain (each one's messages end the other's fast
	// path).
	configs := []struct {
		name  string
		ret   pubsub.Retention
		nodes int
	}{
		{"Herald PublishBatch, no MaxBytes (no trimmer)", pubsub.Retention{MaxEvents: 1000, MaxAge: time.Hour}, 1},
		{"Herald PublishBatch, MaxBytes 256 MiB (asleep)", pubsub.Retention{MaxEvents: 1000, MaxAge: time.Hour, MaxBytes: 256 << 20}, 1},
		{"Herald PublishBatch, MaxBytes 1 MiB (trimming)", pubsub.Retention{MaxEvents: 1000, MaxAge: time.Hour, MaxBytes: 1 << 20}, 1},
		{"Herald PublishBatch, 2 nodes at once, no MaxBytes", pubsub.Retention{MaxEvents: 1000, MaxAge: time.Hour}, 2},
	}
	per := make([][]float64, len(configs))
	for r := range rounds {
		for i, c := range configs {
			nodes := make([]*natsbroker.Broker, c.nodes)
			for k := range nodes {
				b, err := natsbroker.Open(ctx, url, &natsbroker.Options{Stream: fmt.Sprintf("H%d_%d", i, r), Retention: c.ret})
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				nodes[k] = b
				// Warm: the first publish on a subject reads the subject's
				// newest message and the stream's info (once per subject
				// per node), which a long run does not pay per event.
				warm := make([]*pubsub.Message, 100)
				for j := range warm {
					warm[j] = &pubsub.Message{Topics: []string{fmt.Sprint("t", j)}, Data: data}
				}
				if n, err := b.PublishBatch(ctx, warm); err != nil || n != len(warm) {
					t.Fatal(n, err)
				}
			}
			c0 := cpuOf(t, pid)
			errs := make(chan error, len(nodes))
			for _, b := range nodes {
				go func() {
					for i := 0; i < events/len(nodes); i += 100 {
						batch := make([]*pubsub.Message, 100)
						for j := range batch {
							batch[j] = &pubsub.Message{Topics: []string{fmt.Sprint("t", j)}, Data: data}
						}
						if n, err := b.PublishBatch(ctx, batch); err != nil || n != len(batch) {
							errs <- fmt.Errorf("%d published: %w", n, err)
							return
						}
					}
					errs <- nil
				}()
			}
			for range nodes {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			c1 := cpuOf(t, pid)
			per[i] = append(per[i], float64((c1-c0).Nanoseconds())/1000/events)
			for _, b := range nodes {
				b.Close()
			}
		}
	}
	for i, c := range configs {
		m := median(per[i])
		t.Logf("%-46s %6.1f µs per message (%.2f×) rounds %.1f", c.name, m, m/base, per[i])
	}
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average at the end: %s", strings.TrimSpace(string(l)))
	}
}

// ackOf waits for an async publish's acknowledgement.
func ackOf(t *testing.T, f jetstream.PubAckFuture) *jetstream.PubAck {
	t.Helper()
	select {
	case ack := <-f.Ok():
		return ack
	case err := <-f.Err():
		t.Fatalf("publish refused: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no acknowledgement within 30s")
	}
	return nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
