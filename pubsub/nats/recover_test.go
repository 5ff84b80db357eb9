package nats_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/internal/logtest"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/nats"
	"github.com/heraldpush/herald/pubsub/pubsubtest"
)

// ownNATS is a nats-server process of the test's own, with JetStream, on a
// free port and a storage directory, so that it can be frozen, killed and
// started again with its storage.
type ownNATS struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func startOwnNATS(t *testing.T) *ownNATS {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("nats-server is not installed (CI is set, so this fails)")
		}
		t.Skip("nats-server is not installed and CI is unset: skipping")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &ownNATS{t: t, bin: bin, dir: t.TempDir(), port: port}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *ownNATS) url() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

// start runs the server and waits until JetStream answers.
func (s *ownNATS) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-js", "-sd", s.dir)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	cmd, done := s.cmd, s.done
	go func() { _ = cmd.Wait(); close(done) }()
	testkit.WaitWithin(s.t, 20*time.Second, "nats-server to serve JetStream", func() bool {
		nc, err := natsgo.Connect(s.url(), natsgo.Timeout(time.Second))
		if err != nil {
			return false
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx)
		return err == nil
	})
}

func (s *ownNATS) signal(sig syscall.Signal) {
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
}

// stopped reports whether the process is stopped (SIGSTOP took effect).
func (s *ownNATS) stopped() bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'T'
}

// kill ends the server with SIGKILL (by its PID) and waits for it.
func (s *ownNATS) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// TestRecoverAfterKill: nats-server is frozen while a publish waits for
// its answer, killed, and started again with its storage. The publish
// completes as soon as the server is back (not after the whole broker
// timeout), once; live delivery resumes within 500 ms of it (the listener
// makes a new consumer on the client's reconnect, not on missed
// heartbeats); the log says "connection lost", "restored", "interrupted"
// and "resumed" once each.
func TestRecoverAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nats-server")
	}
	srv := startOwnNATS(t)
	nc, err := natsgo.Connect(srv.url(), natsgo.MaxReconnects(-1), natsgo.ReconnectWait(200*time.Millisecond), natsgo.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	logs := logtest.New()
	const timeout = 15 * time.Second
	b, err := nats.New(context.Background(), nc, &nats.Options{Stream: "RECOVER", Timeout: timeout, Logger: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	h := pubsubtest.NewListener()
	pubsubtest.Listen(t, b, h)
	ctx := context.Background()
	probe := func() *pubsub.Message {
		m := &pubsub.Message{Topics: []string{"r"}, Data: "probe"}
		if _, err := b.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	first := probe()
	h.Wait(t, "the first message", func() bool { return h.LastPos() == first.Pos })

	// Freeze the server, and publish: the request waits for an answer.
	srv.signal(syscall.SIGSTOP)
	testkit.WaitWithin(t, 10*time.Second, "nats-server to be stopped", srv.stopped)
	sent := nc.Stats().OutMsgs
	type result struct {
		m   *pubsub.Message
		err error
		at  time.Time
	}
	res := make(chan result, 1)
	go func() {
		m := &pubsub.Message{Topics: []string{"r"}, Data: "in flight"}
		_, err := b.Publish(ctx, m)
		res <- result{m, err, time.Now()}
	}()
	testkit.WaitWithin(t, 10*time.Second, "the publish to be sent", func() bool { return nc.Stats().OutMsgs > sent })
	srv.kill()
	testkit.WaitWithin(t, 10*time.Second, "the connection loss to be noticed", func() bool { return logs.Count("connection lost") > 0 })
	restart := time.Now()
	srv.start()

	var r result
	select {
	case r = <-res:
	case <-time.After(timeout):
		t.Fatalf("the publish in flight did not return within %v", timeout)
	}
	if r.err != nil {
		t.Fatalf("the publish in flight failed: %v", r.err)
	}
	t.Logf("the publish in flight returned %v after nats-server was started again", r.at.Sub(restart).Round(time.Millisecond))
	if d := r.at.Sub(restart); d > timeout/2 {
		t.Errorf("the publish in flight returned %v after the restart: it waited for its deadline, not for the server", d)
	}
	h.Wait(t, "the publish in flight, live", func() bool { return h.LastPos() == r.m.Pos })
	if d := time.Since(r.at); d > 500*time.Millisecond {
		t.Errorf("live delivery resumed %v after the first publish accepted, want within 500ms", d)
	}
	t.Logf("live delivery %v after the first publish accepted", time.Since(r.at).Round(time.Millisecond))
	last := probe()
	h.Wait(t, "a message after the recovery", func() bool { return h.LastPos() == last.Pos })

	// Once each in history, in order, with no resync.
	snap, err := b.Read(ctx, pubsub.Query{Topics: []string{"r"}, After: &pubsub.Position{Epoch: b.Epoch()}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range snap.Events {
		got = append(got, m.Data)
	}
	if strings.Join(got, ",") != "probe,in flight,probe" || snap.Truncated {
		t.Errorf("history %q (truncated %v), want probe, in flight, probe", got, snap.Truncated)
	}
	if len(h.Epochs()) != 0 {
		t.Errorf("the listener resynced %v", h.Epochs())
	}
	for _, want := range []string{"connection lost", "connection restored", "live delivery interrupted", "live delivery resumed"} {
		if n := logs.Count(want); n != 1 {
			t.Errorf("logged %q %d times, want once", want, n)
		}
	}
}
