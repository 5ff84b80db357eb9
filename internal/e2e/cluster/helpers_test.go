// Package cluster_test runs Herald as a cluster of real `herald serve`
// processes on a shared broker (Redis, NATS JetStream) and checks exact
// resume across nodes: a node killed mid-stream, a broker restarted or
// wiped, a broker down while clients publish.
package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/sse"
)

// binDir holds the herald binary, built on first use.
var (
	binDir    string
	buildOnce sync.Once
	heraldBin string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		http.DefaultClient.CloseIdleConnections()
		if err := checkLeaks(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left after the tests:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// herald returns the herald binary, building it the first time.
func herald(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() { heraldBin, buildErr = testkit.BuildHeraldIn(binDir) })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return heraldBin
}

// skipOrFail skips the test when a service it needs is absent, unless CI is
// set (then it fails).
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set, so this fails)", msg)
	}
	t.Skipf("%s and CI is unset: skipping", msg)
}

// node is one `herald serve` process.
type node struct {
	name string
	URL  string
	cmd  *exec.Cmd
	done chan struct{}

	mu   sync.Mutex
	logs bytes.Buffer
}

// startNode starts `herald serve` with args and waits until it listens.
func startNode(t *testing.T, name string, args ...string) *node {
	t.Helper()
	n := &node{name: name, done: make(chan struct{})}
	args = append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json", "--publish-rate", "0", "--shutdown-timeout", "2s"}, args...)
	n.cmd = exec.Command(herald(t), args...)
	n.cmd.Env = append(os.Environ(), "HERALD_LOG_REQUESTS=false")
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "herald listening" {
				addr <- rec["addr"].(string)
			}
			n.mu.Lock()
			n.logs.Write(sc.Bytes())
			n.logs.WriteByte('\n')
			n.mu.Unlock()
		}
		_ = n.cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("logs of node %s:\n%s", n.name, n.Logs())
		}
	})
	select {
	case a := <-addr:
		n.URL = "http://" + a
	case <-n.done:
		t.Fatalf("node %s exited:\n%s", name, n.Logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("node %s did not log its address:\n%s", name, n.Logs())
	}
	return n
}

// Logs returns what the node logged.
func (n *node) Logs() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.logs.String()
}

// kill sends SIGKILL and waits for the process to end.
func (n *node) kill() {
	if n.cmd.Process != nil {
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
		<-n.done
	}
}

// published is one event the test published.
type published struct {
	ID     string
	Topics []string
	Data   string
}

// publish posts one event to a node and returns its id; it fails the test
// unless the node answers 200.
func publish(t *testing.T, n *node, data string, topics ...string) published {
	t.Helper()
	status, body := post(n, data, topics...)
	if status != http.StatusOK {
		t.Fatalf("publish %q to %v on node %s: %d %s", data, topics, n.name, status, body)
	}
	var res struct{ ID string }
	if err := json.Unmarshal(body, &res); err != nil || res.ID == "" {
		t.Fatalf("publish: answer %s: %v", body, err)
	}
	return published{ID: res.ID, Topics: topics, Data: data}
}

func post(n *node, data string, topics ...string) (int, []byte) {
	body, _ := json.Marshal(map[string]any{"topics": topics, "data": data})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.URL+"/publish", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// received is one event a client received.
type received struct {
	ID, Type, Data string
	Node           string
}

// client is an SSE subscriber that reconnects with Last-Event-ID, moving to
// the next of its nodes when one cannot be reached.
type client struct {
	name   string
	topics []string
	nodes  []*node
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	events   []received // messages and resets, in arrival order
	lastID   string
	at       int // index in nodes
	connects int
	changed  chan struct{}
}

func newClient(name string, topics []string, nodes ...*node) *client {
	ctx, cancel := context.WithCancel(context.Background())
	c := &client{name: name, topics: topics, nodes: nodes, cancel: cancel, done: make(chan struct{}), changed: make(chan struct{}, 1)}
	go c.run(ctx)
	return c
}

func (c *client) stop() {
	c.cancel()
	<-c.done
}

func (c *client) run(ctx context.Context) {
	defer close(c.done)
	for ctx.Err() == nil {
		c.mu.Lock()
		n := c.nodes[c.at]
		last := c.lastID
		c.mu.Unlock()
		err := c.stream(ctx, n, last)
		if ctx.Err() != nil {
			return
		}
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			// The node is gone: go to the next one.
			c.mu.Lock()
			c.at = (c.at + 1) % len(c.nodes)
			c.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stream reads one connection until it ends.
func (c *client) stream(ctx context.Context, n *node, last string) error {
	q := url.Values{"topic": c.topics}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/events?"+q.Encode(), nil)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	c.mu.Lock()
	c.connects++
	c.mu.Unlock()
	dec := sse.NewDecoder(resp.Body)
	dec.SetLastEventID(last)
	for {
		ev, err := dec.Next()
		c.mu.Lock()
		if id := dec.LastEventID(); id != "" {
			c.lastID = id
		}
		if err == nil {
			c.events = append(c.events, received{ID: ev.ID, Type: ev.Type, Data: ev.Data, Node: n.name})
		}
		c.mu.Unlock()
		select {
		case c.changed <- struct{}{}:
		default:
		}
		if err != nil {
			return err
		}
	}
}

// messages returns the data of the messages received (not resets).
func (c *client) messages() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.events {
		if e.Type != "herald.reset" {
			out = append(out, e.Data)
		}
	}
	return out
}

// resets returns the reasons of the herald.reset events received.
func (c *client) resets() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.events {
		if e.Type == "herald.reset" {
			var r struct{ Reason string }
			_ = json.Unmarshal([]byte(e.Data), &r)
			out = append(out, r.Reason)
		}
	}
	return out
}

// waitFor waits until the client has received every message of want.
// It does not wait for the last of want to come last: on several shards,
// events of topics on different shards have no order between them, and
// the client may get the last one published before another one (the
// checks that follow tell whether each came exactly once, and in order
// where order is promised).
func (c *client) waitFor(t *testing.T, want []string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		ms := c.messages()
		missing := missingFrom(ms, want)
		if len(missing) == 0 {
			return
		}
		select {
		case <-c.changed:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			tail := ms[max(0, len(ms)-5):]
			t.Fatalf("client %s (%v): after %v it still misses %d of the %d events it should get: %v; it has %d messages ending %q, resets %v",
				c.name, c.topics, timeout, len(missing), len(want), head(missing), len(ms), tail, c.resets())
		}
	}
}

// missingFrom returns the events of want that got lacks.
func missingFrom(got, want []string) []string {
	have := make(map[string]bool, len(got))
	for _, g := range got {
		have[g] = true
	}
	var out []string
	for _, w := range want {
		if !have[w] {
			out = append(out, w)
		}
	}
	return out
}

// want returns the data of the events of ps a client of topics should get.
func want(ps []published, topics []string) []string {
	var out []string
	for _, p := range ps {
		if slices.ContainsFunc(p.Topics, func(t string) bool { return slices.Contains(topics, t) }) {
			out = append(out, p.Data)
		}
	}
	return out
}

// checkExactly fails unless got is want: every event exactly once, in order.
func checkExactly(t *testing.T, who string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	if anyOrder && slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		// Topics on different shards have no order between them (the
		// hub tests check the order per topic).
		return
	}
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	var dups, missing []string
	for g, n := range seen {
		if n > 1 {
			dups = append(dups, g)
		}
	}
	for _, w := range want {
		if seen[w] == 0 {
			missing = append(missing, w)
		}
	}
	slices.Sort(dups)
	t.Errorf("%s: got %d events, want %d; duplicates %v; missing %v", who, len(got), len(want), head(dups), head(missing))
}

// anyOrder, set while a test runs on several shards, lets checkExactly
// accept the events in any order (each once).
var anyOrder bool

func head(s []string) []string {
	if len(s) > 10 {
		return append(s[:10:10], "...")
	}
	return s
}

// topicsOf gives client i its topics: one, the other, or both.
// topicsOf: "news" and "weather" are on different shards of two.
func topicsOf(i int) []string {
	switch i % 3 {
	case 0:
		return []string{"news"}
	case 1:
		return []string{"weather"}
	}
	return []string{"news", "weather"}
}

// topicsFor gives event i its topics; every 5th goes to both.
func topicsFor(i int) []string {
	switch {
	case i%5 == 0:
		return []string{"news", "weather"}
	case i%2 == 0:
		return []string{"news"}
	}
	return []string{"weather"}
}

// eventData is the data of event i of a phase.
func eventData(phase string, i int) string { return fmt.Sprintf("%s-%04d", phase, i) }
