package cli_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testkit"
)

// TestBinary builds the herald command and runs it as real processes: exit
// codes, and `herald subscribe` following a `herald serve` that is killed
// (SIGKILL) and restarted on the same address mid-stream.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := testkit.BuildHerald(t)

	t.Run("exit codes", func(t *testing.T) {
		srv := startServe(t, bin, "127.0.0.1:0")
		refused := refusedAddr(t)
		if _, err := runBin(t, bin, "publish", "--server", srv.url, "--topic", "done", "--data", "x", "--final"); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			args   []string
			code   int
			stdout string // a regexp
			stderr string
		}{
			{[]string{"publish", "--server", srv.url, "--topic", "t", "--data", "x"}, 0, `^\w+-\d+\n$`, ""},
			{[]string{"publish", "--topic", "t"}, 2, "^$", "missing --data"},
			{[]string{"publish", "--server", srv.url, "--topic", "t", "--data", "x", "--event", "herald.x"}, 1, "^$", "is reserved"},
			{[]string{"publish", "--server", refused, "--topic", "t", "--data", "x"}, 3, "^$", "cannot reach the Herald server"},
			{[]string{"subscribe", "--server", srv.url, "--topic", "done"}, 0, "^$", "topics are finished"},
			{[]string{"subscribe", "--server", srv.url, "--topic", ""}, 1, "^$", "subscribe refused: 400"},
			{[]string{"subscribe", "--server", refused, "--topic", "t"}, 3, "^$", "cannot reach the Herald server"},
			{[]string{"subscribe", "--format", "yaml", "--topic", "t"}, 2, "^$", "--format"},
		}
		for _, tt := range tests {
			cmd := exec.Command(bin, tt.args...)
			cmd.Env = append(os.Environ(), "HERALD_SERVER=")
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !regexp.MustCompile(tt.stdout).MatchString(out.String()) || !strings.Contains(errOut.String(), tt.stderr) {
				t.Errorf("herald %q: exit %d, stdout %q, stderr %q; want %d, %s, %q", tt.args, code, out.String(), errOut.String(), tt.code, tt.stdout, tt.stderr)
			}
		}
	})

	// In memory, history dies with the process: the subscriber gets
	// herald.reset epoch-changed, then every later event once.
	t.Run("kill and restart, in memory", func(t *testing.T) {
		restartTest(t, bin, true)
	})
	// With --data-dir the history survives: the subscriber resumes with no
	// loss, no duplicate and no reset.
	t.Run("kill and restart, durable", func(t *testing.T) {
		restartTest(t, bin, false, "--data-dir", t.TempDir())
	})
}

func restartTest(t *testing.T, bin string, wantReset bool, serveArgs ...string) {
	srv := startServe(t, bin, "127.0.0.1:0", serveArgs...)
	// Resuming after a first event makes the start independent of when the
	// subscription is registered.
	first, err := runBin(t, bin, "publish", "--server", srv.url, "--topic", "t", "--data", "0")
	if err != nil {
		t.Fatal(err)
	}
	sub := startSubscriber(t, bin, "--server", srv.url, "--topic", "t", "--format", "json", "--last-event-id", first)
	var ids []string
	for i := 1; i <= 5; i++ {
		id, err := runBin(t, bin, "publish", "--server", srv.url, "--topic", "t", "--data", strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	got := sub.lines(t, 5)

	srv.kill(t)
	if _, err := runBin(t, bin, "publish", "--server", srv.url, "--topic", "t", "--data", "lost"); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("publish while the server is down: %v, want exit status 3", err)
	}
	srv = startServe(t, bin, srv.addr, serveArgs...)
	for i := 6; i <= 10; i++ {
		if _, err := runBin(t, bin, "publish", "--server", srv.url, "--topic", "t", "--data", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	n := 5
	if wantReset {
		n = 6
	}
	got = append(got, sub.lines(t, n)...)

	var data []string
	for _, l := range got {
		if l.Event == "herald.reset" {
			var r struct{ Reason, LastEventID string }
			if err := json.Unmarshal([]byte(l.Data), &r); err != nil || r.Reason != "epoch-changed" || r.LastEventID != ids[4] {
				t.Errorf("reset %q, want epoch-changed from %s", l.Data, ids[4])
			}
			data = append(data, "reset")
			continue
		}
		if l.Topic != "t" || l.Event != "message" || l.ID == "" {
			t.Errorf("line %+v", l)
		}
		data = append(data, l.Data)
	}
	want := "1 2 3 4 5 6 7 8 9 10"
	if wantReset {
		want = "1 2 3 4 5 reset 6 7 8 9 10"
	}
	if strings.Join(data, " ") != want {
		t.Errorf("subscriber printed %q, want %q", strings.Join(data, " "), want)
	}
	if code := sub.interrupt(t); code != 0 {
		t.Errorf("subscribe exited %d after SIGINT, want 0; stderr %q", code, sub.stderr.String())
	}
	if errOut := sub.stderr.String(); !strings.Contains(errOut, "connection lost") || !strings.Contains(errOut, "reconnected") {
		t.Errorf("subscribe's stderr %q does not report the lost and restored connection", errOut)
	}
}

// runBin runs the binary and returns its trimmed standard output.
func runBin(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("herald %v: %w: %s", args, err, errOut.String())
	}
	return strings.TrimSpace(string(out)), nil
}

type serveProc struct {
	cmd  *exec.Cmd
	addr string
	url  string
	done chan struct{}
}

var listeningRE = regexp.MustCompile(`msg="herald listening" addr=(\S+)`)

// startServe starts `herald serve` on addr and waits until it listens.
func startServe(t *testing.T, bin, addr string, args ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", addr, "--retry", "50ms", "--log-format", "text"}, args...)...)
	cmd.Env = os.Environ()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, done: make(chan struct{})}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill(t) })
	select {
	case p.addr = <-found:
	case <-p.done:
		t.Fatal("herald serve exited before listening")
	case <-time.After(30 * time.Second):
		t.Fatal("herald serve did not start listening")
	}
	p.url = "http://" + p.addr
	return p
}

// kill ends the server with SIGKILL, as a crash would, and waits for it.
func (p *serveProc) kill(t *testing.T) {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}

type subscriberProc struct {
	cmd    *exec.Cmd
	out    chan line
	stderr *syncBuffer
	done   chan struct{}
}

func startSubscriber(t *testing.T, bin string, args ...string) *subscriberProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"subscribe"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &subscriberProc{cmd: cmd, out: make(chan line, 100), stderr: newSyncBuffer(), done: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.out)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var v map[string]string
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Errorf("subscribe printed %q: %v", sc.Text(), err)
				continue
			}
			s.out <- line{v["id"], v["event"], v["data"], v["topic"]}
		}
	}()
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// lines reads the next n lines.
func (s *subscriberProc) lines(t *testing.T, n int) []line {
	t.Helper()
	var out []line
	deadline := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case l, ok := <-s.out:
			if !ok {
				t.Fatalf("subscribe ended after %v; stderr %q", out, s.stderr.String())
			}
			out = append(out, l)
		case <-deadline:
			t.Fatalf("timed out after %v; stderr %q", out, s.stderr.String())
		}
	}
	return out
}

// interrupt sends SIGINT and returns the exit code.
func (s *subscriberProc) interrupt(t *testing.T) int {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("subscribe did not exit after SIGINT")
	}
	// Nothing more after the interrupt.
	for l := range s.out {
		t.Errorf("extra line %+v", l)
	}
	return s.cmd.ProcessState.ExitCode()
}
