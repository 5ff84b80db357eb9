package streams_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
)

var (
	binDir    string
	buildOnce sync.Once
	heraldBin string
	buildErr  error

	npmOnce sync.Once
	npmErr  string
)

// herald returns the herald binary, building it the first time.
func herald(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { heraldBin, buildErr = testkit.BuildHeraldIn(binDir) })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return heraldBin
}

// skipOrFail skips the test when a service it needs is absent, unless CI
// is set (then it fails).
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set, so this fails)", msg)
	}
	t.Skipf("%s and CI is unset: skipping", msg)
}

// npmDir returns the folder of the npm packages (testdata/node), installed.
func npmDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "node"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		skipOrFail(t, "node is not installed (scripts/test.sh installs it)")
	}
	npmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "@durable-streams", "client", "package.json")); err == nil {
			return
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			npmErr = "npm not found, and " + dir + "/node_modules is missing"
			return
		}
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			npmErr = "npm ci in " + dir + ": " + err.Error() + "\n" + string(out)
		}
	})
	if strings.HasPrefix(npmErr, "npm not found") {
		skipOrFail(t, "%s", npmErr)
	} else if npmErr != "" {
		t.Fatal(npmErr)
	}
	return dir
}

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// brokerCase is a broker to run the streams on: the flags of `herald
// serve` for it, made fresh for each test (unique prefixes, streams and
// directories).
type brokerCase struct {
	name  string
	flags func(t *testing.T) []string
}

// brokers are every broker the streams must work on.
func brokers() []brokerCase {
	unique := func(t *testing.T) string {
		return fmt.Sprintf("ds%d%s", time.Now().UnixNano()%1e9, pubsub.NewEpoch()[:4])
	}
	return []brokerCase{
		{"memory", func(*testing.T) []string { return nil }},
		{"data-dir", func(t *testing.T) []string { return []string{"--data-dir", t.TempDir()} }},
		{"redis", func(t *testing.T) []string {
			needPort(t, 6379, "Redis")
			return []string{"--broker", "redis://127.0.0.1:6379/0", "--broker-prefix", "herald-test-" + unique(t)}
		}},
		{"nats", func(t *testing.T) []string {
			needPort(t, 4222, "NATS")
			return []string{"--broker", "nats://127.0.0.1:4222", "--broker-stream", "HT_" + strings.ToUpper(unique(t))}
		}},
		{"redis-3-shards", func(t *testing.T) []string {
			needPort(t, 6379, "Redis")
			return []string{"--broker", "redis://127.0.0.1:6379/0", "--broker-prefix", "herald-test-" + unique(t), "--broker-shards", "3"}
		}},
	}
}

// needPort skips (or fails, in CI) when nothing listens on a local port.
func needPort(t *testing.T, port int, what string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		skipOrFail(t, "%s is not running on 127.0.0.1:%d", what, port)
	}
	c.Close()
}

// logBuffer is a process's output, safe to read while the process writes
// it (exec copies a non-file writer from a goroutine of its own).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// node is one `herald serve` process.
type node struct {
	URL    string
	cmd    *exec.Cmd
	out    *logBuffer
	done   chan struct{}
	stopMu sync.Mutex
}

// startHerald starts `herald serve` with flags on a free port and waits
// until it is ready.
func startHerald(t *testing.T, flags ...string) *node {
	t.Helper()
	port := freePort(t)
	args := append([]string{"serve", "--addr", "127.0.0.1:" + strconv.Itoa(port), "--log-level", "warn"}, flags...)
	n := &node{URL: "http://127.0.0.1:" + strconv.Itoa(port), out: new(logBuffer), done: make(chan struct{})}
	n.cmd = exec.Command(herald(t), args...)
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(n.stop)
	ready := testkit.Within(30*time.Second, func() bool {
		select {
		case <-n.done:
			return true
		default:
		}
		resp, err := http.Get(n.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	select {
	case <-n.done:
		t.Fatalf("herald exited: %s", n.out.String())
	default:
	}
	if !ready {
		t.Fatalf("herald not ready after 30 s:\n%s", n.out.String())
	}
	return n
}

// stop ends the process (SIGTERM, then SIGKILL after 10 s).
func (n *node) stop() {
	n.stopMu.Lock()
	defer n.stopMu.Unlock()
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
}
