package redis_test

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/logtest"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
	"github.com/heraldpush/herald/pubsub/redis"
)

// ownRedis is a redis-server of the test's own, on a free port, with its
// data in a directory (append-only file, fsync always) so that it can be
// killed and started again with its data.
type ownRedis struct {
	t    *testing.T
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func startOwnRedis(t *testing.T) *ownRedis {
	t.Helper()
	r := &ownRedis{t: t, dir: t.TempDir(), port: freePort(t)}
	r.start()
	t.Cleanup(r.kill)
	return r
}

func (r *ownRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command(redisServer(r.t), "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port), "--dir", r.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.done = make(chan struct{})
	cmd, done := r.cmd, r.done
	go func() { _ = cmd.Wait(); close(done) }()
	waitPing(r.t, r.port)
}

// kill ends the server with SIGKILL (by its PID) and waits for it.
func (r *ownRedis) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	r.cmd = nil
}

func (r *ownRedis) url() string { return "redis://127.0.0.1:" + strconv.Itoa(r.port) + "/0" }

// TestListenerRecoversAtOnce: when Redis is killed and started again (with
// its data), live delivery resumes within 500 ms of the first publish Redis
// accepts, the log says "interrupted" and "resumed" once each, and nothing
// published is lost or duplicated.
func TestListenerRecoversAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	srv := startOwnRedis(t)
	logs := logtest.New()
	b, err := redis.Open(context.Background(), srv.url(), &redis.Options{Prefix: "recover", Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	h := pubsubtest.NewListener()
	pubsubtest.Listen(t, b, h)
	h.Settle(t)
	ctx := context.Background()
	before := &pubsub.Message{Topics: []string{"r"}, Data: "before"}
	if _, err := b.Publish(ctx, before); err != nil {
		t.Fatal(err)
	}
	h.Wait(t, "the message before the kill", func() bool { return len(h.Messages()) == 1 })

	srv.kill()
	testkit.WaitWithin(t, 10*time.Second, "the listener to notice", func() bool { return logs.Count("live delivery interrupted") > 0 })
	// A 3 s outage, clients publishing meanwhile: they are refused.
	down := time.Now()
	testkit.WaitWithin(t, 10*time.Second, "a 3s outage", func() bool {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := b.Publish(pctx, &pubsub.Message{Topics: []string{"r"}, Data: "refused"})
		if !errors.Is(err, pubsub.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("publish while Redis is down: %v, want ErrUnavailable or the deadline", err)
		}
		return time.Since(down) > 3*time.Second
	})
	srv.start()

	// Publish until Redis accepts.
	var after *pubsub.Message
	var accepted time.Time
	testkit.WaitWithin(t, 20*time.Second, "a publish to be accepted", func() bool {
		m := &pubsub.Message{Topics: []string{"r"}, Data: "after"}
		pctx, cancel := context.WithTimeout(ctx, time.Second) // a busy machine's publish is slow too
		defer cancel()
		if _, err := b.Publish(pctx, m); err != nil {
			return false
		}
		after, accepted = m, time.Now()
		return true
	})
	h.Wait(t, "the first message accepted after the restart", func() bool {
		return h.LastPos() == after.Pos
	})
	d := time.Since(accepted)
	t.Logf("live delivery %v after the first accepted publish (Redis down %v)", d, accepted.Sub(down).Round(time.Millisecond))
	if d > 500*time.Millisecond {
		t.Errorf("live delivery resumed %v after the first publish Redis accepted, want within 500ms", d)
	}
	if after.Pos.Epoch != before.Pos.Epoch || after.Pos.Offset != before.Pos.Offset+1 {
		t.Errorf("after the restart: %v, want the next offset after %v in the same epoch", after.Pos, before.Pos)
	}
	if n := len(h.Messages()); n != 2 || len(h.Epochs()) != 0 {
		t.Errorf("the listener got %d messages and resyncs %v, want 2 and none", n, h.Epochs())
	}
	testkit.WaitWithin(t, 5*time.Second, "the resumption to be logged", func() bool { return logs.Count("live delivery resumed") > 0 })
	if i, r := logs.Count("live delivery interrupted"), logs.Count("live delivery resumed"); i != 1 || r != 1 {
		t.Errorf("logged %d interruptions and %d resumptions, want 1 and 1", i, r)
	}
}
