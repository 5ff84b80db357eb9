package crashtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/heraldpush/herald/internal/chat"
	"github.com/heraldpush/herald/internal/demo"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/sse"
)

// watch reads the text/event-stream at url (from lastID, "" for a new
// client). It returns the status when it is not 200.
func watch(t *testing.T, c *http.Client, url, lastID string) (*testkit.Stream, int) {
	t.Helper()
	resp, cancel := testkit.Get(t, c, url, testkit.LastEventID(lastID))
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode
	}
	return testkit.NewStream(t, resp, cancel), http.StatusOK
}

// next returns the next event of a stream, or fails the test.
func next(t *testing.T, s *testkit.Stream) sse.Event {
	t.Helper()
	ev, err := s.NextWithin(30 * time.Second)
	if err != nil {
		t.Fatalf("waiting for an event: %v", err)
	}
	return ev
}

// rest returns the events of a stream until it ends, cleanly or not.
func rest(t *testing.T, s *testkit.Stream) []sse.Event {
	t.Helper()
	blocks, _ := s.EndWithin(t, 30*time.Second)
	var out []sse.Event
	for _, b := range blocks {
		if b.HasData {
			out = append(out, b.Event())
		}
	}
	return out
}

// askChat starts an answer and returns its id.
func askChat(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	resp, err := c.Post(base+"/chat", "application/json", strings.NewReader(`{"messages":[{"role":"user","content":"tell me a long story"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st chat.Started
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /chat: %d %v", resp.StatusCode, err)
	}
	return st.ID
}

// tokensThen reads n token events, and returns their text and the last id.
func tokensThen(t *testing.T, evs *testkit.Stream, n int) (string, string) {
	t.Helper()
	var text strings.Builder
	id := ""
	for i := 0; i < n; {
		ev := next(t, evs)
		if ev.Type == chat.EventToken {
			text.WriteString(ev.Data)
			id = ev.ID
			i++
		}
	}
	return text.String(), id
}

// interrupted checks that evs end with the error event of an interrupted
// answer whose text starts with prefix, and returns it.
func interrupted(t *testing.T, evs []sse.Event, prefix, message string) chat.Error {
	t.Helper()
	if len(evs) == 0 || evs[len(evs)-1].Type != chat.EventError {
		types := make([]string, len(evs))
		for i, ev := range evs {
			types[i] = ev.Type
		}
		t.Fatalf("the stream ended with %v, want an error event last", types)
	}
	var e chat.Error
	if err := json.Unmarshal([]byte(evs[len(evs)-1].Data), &e); err != nil {
		t.Fatal(err)
	}
	if e.Code != chat.CodeInterrupted || !strings.Contains(e.Message, message) || !strings.HasPrefix(e.Text, prefix) || e.Text == "" {
		t.Fatalf("error event %+v, want code %q, a message with %q, the text so far", e, chat.CodeInterrupted, message)
	}
	return e
}

// TestSIGTERMEndsAnswerWithErrorEvent: SIGTERM mid-answer, and the stream
// a watcher has open ends with the answer's error event ("interrupted",
// the text so far) before the server exits, cleanly. In memory, and on
// Redis (where the event reaches the stream through the broker's listener).
func TestSIGTERMEndsAnswerWithErrorEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the herald binary")
	}
	bin := testkit.BuildHerald(t)
	for _, tc := range []struct {
		name string
		args func(t *testing.T) []string
	}{
		{"memory", func(*testing.T) []string { return nil }},
		{"redis", redisArgs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &http.Client{}
			defer c.CloseIdleConnections()
			srv := runHerald(t, bin, append(tc.args(t), "--llm-demo-delay", "100ms")...)
			id := askChat(t, c, srv.url)
			evs, _ := watch(t, c, srv.url+"/chat/stream/"+id, "")
			text, _ := tokensThen(t, evs, 3)

			if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			interrupted(t, rest(t, evs), text, "shutting down")
			select {
			case <-srv.done:
			case <-time.After(30 * time.Second):
				t.Fatal("herald did not exit within 30s of SIGTERM")
			}
			if code := srv.cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("herald exited with %d after SIGTERM, want 0", code)
			}
		})
	}
}

// killRestart runs the crash scenario on a server started with args: an
// answer and a demo task running, SIGKILL, a start with the same args; the
// answer's stream then ends with its error event ("interrupted"), the
// task's with INTERRUPTED, and a new task has a higher number.
func killRestart(t *testing.T, args ...string) {
	bin := testkit.BuildHerald(t)
	c := &http.Client{}
	defer c.CloseIdleConnections()
	args = append(args, "--llm-demo-delay", "100ms", "--demo-task-interval", "300ms")
	srv := runHerald(t, bin, args...)

	id := askChat(t, c, srv.url)
	answer, _ := watch(t, c, srv.url+"/chat/stream/"+id, "")
	text, lastToken := tokensThen(t, answer, 3)

	resp, err := c.Post(srv.url+"/sse/start-task", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	task, err := strconv.Atoi(resp.Header.Get(demo.TaskHeader))
	if err != nil {
		t.Fatalf("start-task: %d, task %q", resp.StatusCode, resp.Header.Get(demo.TaskHeader))
	}
	steps, _ := watch(t, c, fmt.Sprintf("%s/sse/subscribe?task=%d", srv.url, task), "")
	var lastStep string
	for lastStep == "" {
		if ev := next(t, steps); ev.Type == demo.TypeProgress {
			lastStep = ev.ID
		}
	}

	if err := srv.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	<-srv.done
	c.CloseIdleConnections()

	srv = runHerald(t, bin, args...)
	defer srv.stop(t)
	// The watcher reconnects, from the last token it saw.
	evs, status := watch(t, c, srv.url+"/chat/stream/"+id, lastToken)
	if status != http.StatusOK {
		t.Fatalf("the answer's stream after the restart: %d, want 200 and its end", status)
	}
	got := rest(t, evs)
	var after strings.Builder
	for _, ev := range got {
		if ev.Type == chat.EventToken {
			after.WriteString(ev.Data)
		}
	}
	e := interrupted(t, got, text+after.String(), "stopped")
	t.Logf("the answer ended after %d characters: %q", len(e.Text), e.Message)

	evs, status = watch(t, c, fmt.Sprintf("%s/sse/subscribe?task=%d", srv.url, task), lastStep)
	if status != http.StatusOK {
		t.Fatalf("task %d's stream after the restart: %d, want 200 and its end", task, status)
	}
	got = rest(t, evs)
	if n := len(got); n == 0 || got[n-1].Type != demo.TypeInterrupted || got[n-1].Data != demo.CrashText {
		t.Fatalf("task %d's stream after the restart: %+v, want it to end with INTERRUPTED", task, got)
	}
	resp, err = c.Post(srv.url+"/sse/start-task", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n, _ := strconv.Atoi(resp.Header.Get(demo.TaskHeader)); n <= task {
		t.Fatalf("a task started after the restart has number %d, not above the interrupted task %d", n, task)
	}
}

// TestKill9InterruptedWorkEndsOnRestart: with --data-dir.
func TestKill9InterruptedWorkEndsOnRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the herald binary")
	}
	killRestart(t, "--data-dir", t.TempDir())
}

// TestKill9InterruptedWorkEndsOnRestartRedis: on Redis (the shared one,
// under a prefix of the test's own), with a node name.
func TestKill9InterruptedWorkEndsOnRestartRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the herald binary")
	}
	killRestart(t, append(redisArgs(t), "--node-id", "crashtest-node")...)
}

// redisArgs returns the flags of a server on the shared Redis under a
// prefix of the test's own (its keys deleted when the test ends), or skips
// when Redis is absent and CI is unset.
func redisArgs(t *testing.T) []string {
	t.Helper()
	addr := os.Getenv("HERALD_TEST_REDIS")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Redis is not reachable at %s (CI is set, so this fails): %v", addr, err)
		}
		t.Skipf("Redis is not reachable at %s and CI is unset: skipping", addr)
	}
	conn.Close()
	prefix := "herald-crashtest-" + pubsub.NewEpoch()
	t.Cleanup(func() {
		rdb := goredis.NewClient(&goredis.Options{Addr: addr})
		defer rdb.Close()
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, "{"+prefix+"}*").Result()
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	return []string{"--broker", "redis://" + addr + "/0", "--broker-prefix", prefix}
}
