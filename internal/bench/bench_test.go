package bench_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/bench"
	"github.com/heraldpush/herald/internal/config"
)

// These are smoke runs (seconds, not minutes) so that the load tool never
// rots; the real figures live in docs/benchmarks.md.

func TestFanoutSmoke(t *testing.T) {
	srv := apptest.Start(t, nil)
	res, err := bench.Run(context.Background(), bench.Config{
		Server: srv.URL, Subscribers: 20, Topics: 2, Publishers: 2, Rate: 100, Size: 64, Duration: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Received == 0 || res.Received != res.Expected || res.PublishErrors != 0 {
		t.Fatalf("fan-out smoke run: %+v", res)
	}
	if res.LatencyP99 <= 0 || res.LatencyMax < res.LatencyP50 {
		t.Fatalf("latency figures are not plausible: %+v", res)
	}
	if res.ServerCPUSeconds <= 0 || res.ServerRSSBytes <= 0 {
		t.Fatalf("server usage not read from /metrics: %+v", res)
	}
}

// TestFanoutSmokeWebSocket: the same over WebSocket (the generator's own
// frame reader, which answers the server's pings).
func TestFanoutSmokeWebSocket(t *testing.T) {
	srv := apptest.Start(t, nil)
	res, err := bench.Run(context.Background(), bench.Config{
		Server: srv.URL, Transport: "ws", Subscribers: 20, Topics: 2, Publishers: 2, Rate: 100, Size: 64, Duration: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Received == 0 || res.Received != res.Expected || res.PublishErrors != 0 {
		t.Fatalf("WebSocket fan-out smoke run: %+v", res)
	}
}

func TestBatchSmoke(t *testing.T) {
	srv := apptest.Start(t, nil)
	res, err := bench.Run(context.Background(), bench.Config{
		Server: srv.URL, Subscribers: 3, Publishers: 2, Rate: 0, Batch: 50, Duration: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Published == 0 || res.Published%50 != 0 || res.Received != res.Expected {
		t.Fatalf("batch smoke run: %+v", res)
	}
}

func TestResumeStormSmoke(t *testing.T) {
	srv := apptest.Start(t, nil)
	res, err := bench.ResumeStorm(context.Background(), bench.Config{Server: srv.URL, Subscribers: 50}, 20)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Received != 50*20 || res.ConnectErrors != 0 {
		t.Fatalf("resume storm: %+v", res)
	}
}

func TestSlowConsumerSmoke(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) {
		c.Limits.QueueBytes = 1 << 20
		c.Core.WriteTimeout = 300 * time.Millisecond
	})
	// 24 MB in 1.5 s is more than the kernel's socket buffers absorb, but a
	// busy machine may publish only part of it, or the stall may fill up in
	// the round's last write timeout: rounds repeat (each with a stalled
	// subscriber of its own) until one is cut off, at most 10.
	for round := 1; srv.App.Hub().Stats().SlowDisconnects == 0; round++ {
		if round > 10 {
			t.Fatal("the stalled subscriber was never cut off in 10 rounds")
		}
		res, err := bench.Run(context.Background(), bench.Config{
			Server: srv.URL, Subscribers: 3, Stalled: 1, Rate: 500, Size: 32000, Duration: 1500 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		// The stalled subscriber must not cost the others anything.
		if !res.OK() || res.Received != res.Expected || res.Disconnects != 0 {
			t.Fatalf("slow-consumer run, round %d: %+v", round, res)
		}
	}
}

func TestIdleSmoke(t *testing.T) {
	srv := apptest.Start(t, nil)
	res, err := bench.Idle(context.Background(), bench.Config{Server: srv.URL, Subscribers: 50, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.ConnectErrors != 0 || res.ServerRSSBytes <= 0 {
		t.Fatalf("idle: %+v", res)
	}
}

func TestRefusesRemoteServers(t *testing.T) {
	_, err := bench.Run(context.Background(), bench.Config{Server: "http://192.0.2.1:8080", Subscribers: 1, Duration: time.Second})
	if err == nil {
		t.Fatal("a non-loopback server was accepted without AllowRemote")
	}
}
