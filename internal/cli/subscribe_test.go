package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/cli"
	"github.com/heraldpush/herald/internal/config"
	"go.uber.org/goleak"
)

// subscribeCmd runs `herald subscribe` in-process until stopped.
type subscribeCmd struct {
	out, errOut *syncBuffer
	cancel      context.CancelFunc
	done        chan int
}

func startSubscribe(t *testing.T, args ...string) *subscribeCmd {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s := &subscribeCmd{out: newSyncBuffer(), errOut: newSyncBuffer(), cancel: cancel, done: make(chan int, 1)}
	go func() {
		s.done <- cli.Main(ctx, append([]string{"subscribe"}, args...), &cli.Env{
			Stdout: s.out, Stderr: s.errOut, Getenv: func(string) string { return "" },
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Error("subscribe did not stop")
		}
	})
	return s
}

// waitOut waits until the output contains want.
func (s *subscribeCmd) waitOut(t *testing.T, want string) string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if out := s.out.String(); strings.Contains(out, want) {
			return out
		}
		select {
		case <-s.out.wake:
		case code := <-s.done:
			s.done <- code
			t.Fatalf("subscribe exited (%d) before printing %q; stdout %q, stderr %q", code, want, s.out.String(), s.errOut.String())
		case <-deadline:
			t.Fatalf("timed out waiting for %q; stdout %q, stderr %q", want, s.out.String(), s.errOut.String())
		}
	}
}

// waitErr waits until standard error contains want, or the command has
// exited.
func (s *subscribeCmd) waitErr(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(s.errOut.String(), want) {
		select {
		case <-s.errOut.wake:
		case code := <-s.done:
			s.done <- code
			return
		case <-deadline:
			t.Fatalf("timed out waiting for %q on stderr; stdout %q, stderr %q", want, s.out.String(), s.errOut.String())
		}
	}
}

// wait waits for the command to exit and returns its code.
func (s *subscribeCmd) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-s.done:
		s.done <- code
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("subscribe did not exit; stdout %q, stderr %q", s.out.String(), s.errOut.String())
	}
	return -1
}

func publish(t *testing.T, server string, args ...string) string {
	t.Helper()
	code, out, errOut := herald(t.Context(), "", nil, append([]string{"publish", "--server", server}, args...)...)
	if code != 0 {
		t.Fatalf("publish %v: exit %d, %s", args, code, errOut)
	}
	return strings.TrimSpace(out)
}

func leakCheck(t *testing.T) {
	// Registered first, so it runs after every other cleanup (servers
	// stopped, commands ended).
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func TestSubscribeText(t *testing.T) {
	leakCheck(t)
	srv := apptest.Start(t, nil)
	// Resuming from the first event makes the test independent of when the
	// subscription is registered: the server replays what came after it.
	first := publish(t, srv.URL, "--topic", "news", "--data", "before")
	s := startSubscribe(t, "--server", srv.URL, "--topic", "news", "--last-event-id", first)
	id1 := publish(t, srv.URL, "--topic", "news", "--data", "Hello, Herald")
	id2 := publish(t, srv.URL, "--topic", "news", "--event", "price", "--data", `{"eur":1.08}`)
	id3 := publish(t, srv.URL, "--topic", "news", "--data", "two\nlines")
	want := fmt.Sprintf("id: %s\ndata: Hello, Herald\n\nid: %s\nevent: price\ndata: {\"eur\":1.08}\n\nid: %s\ndata: two\ndata: lines\n\n", id1, id2, id3)
	if out := s.waitOut(t, "data: lines\n\n"); out != want {
		t.Errorf("stdout\n%s\nwant\n%s", out, want)
	}
	s.cancel()
	if code := s.wait(t); code != 0 || s.errOut.String() != "" {
		t.Errorf("interrupted: exit %d, stderr %q; want 0 and nothing", code, s.errOut.String())
	}
}

type line struct{ ID, Event, Data, Topic string }

func parseLines(t *testing.T, out string) []line {
	t.Helper()
	var lines []line
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var v map[string]string
		if err := json.Unmarshal([]byte(l), &v); err != nil || len(v) != 4 {
			t.Fatalf("line %q: not an object with id, event, data, topic: %v", l, err)
		}
		lines = append(lines, line{v["id"], v["event"], v["data"], v["topic"]})
	}
	return lines
}

func TestSubscribeJSON(t *testing.T) {
	leakCheck(t)
	srv := apptest.Start(t, nil)
	first := publish(t, srv.URL, "--topic", "a", "--data", "before")

	// One topic: one stream, the topic on every line.
	one := startSubscribe(t, "--server", srv.URL, "--topic", "a", "--last-event-id", first, "--format", "json")
	// Two topics: one stream per topic.
	two := startSubscribe(t, "--server", srv.URL, "--topic", "a", "--topic", "b", "--last-event-id", first, "--format", "json")
	ida := publish(t, srv.URL, "--topic", "a", "--data", "to a")
	idb := publish(t, srv.URL, "--topic", "b", "--event", "e", "--data", "to b")
	idab := publish(t, srv.URL, "--topic", "a", "--topic", "b", "--data", "to\nboth")
	end := publish(t, srv.URL, "--topic", "a", "--topic", "b", "--data", "end")

	got := parseLines(t, one.waitOut(t, `"data":"end"`))
	want := []line{{ida, "message", "to a", "a"}, {idab, "message", "to\nboth", "a"}, {end, "message", "end", "a"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("one topic:\n got %v\nwant %v", got, want)
	}

	two.waitOut(t, `"data":"end","topic":"a"`)
	out := two.waitOut(t, `"data":"end","topic":"b"`)
	got = parseLines(t, out)
	// Order holds within a topic; across topics it is arrival order.
	sort.SliceStable(got, func(i, j int) bool { return got[i].Topic < got[j].Topic })
	want = []line{
		{ida, "message", "to a", "a"}, {idab, "message", "to\nboth", "a"}, {end, "message", "end", "a"},
		{idb, "e", "to b", "b"}, {idab, "message", "to\nboth", "b"}, {end, "message", "end", "b"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("two topics:\n got %v\nwant %v", got, want)
	}
}

func TestSubscribeEnds(t *testing.T) {
	leakCheck(t)
	srv := apptest.Start(t, func(c *config.Server) { c.Core.Retry = 20 * time.Millisecond })
	first := publish(t, srv.URL, "--topic", "job", "--data", "1")
	s := startSubscribe(t, "--server", srv.URL, "--topic", "job", "--last-event-id", first, "--format", "json")
	publish(t, srv.URL, "--topic", "job", "--data", "2")
	publish(t, srv.URL, "--topic", "job", "--data", "3", "--final")
	if code := s.wait(t); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, s.errOut.String())
	}
	lines := parseLines(t, s.out.String())
	if len(lines) != 2 || lines[0].Data != "2" || lines[1].Data != "3" {
		t.Errorf("printed %v", lines)
	}
	if !strings.Contains(s.errOut.String(), "the server ended the stream: its topics are finished") {
		t.Errorf("stderr %q", s.errOut.String())
	}
}

func TestSubscribeErrors(t *testing.T) {
	leakCheck(t)
	srv := apptest.Start(t, nil)
	refused := refusedAddr(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"missing topic", []string{"--server", srv.URL}, 2, "missing --topic"},
		{"bad format", []string{"--server", srv.URL, "--topic", "t", "--format", "xml"}, 2, `--format: "xml" is not text or json`},
		{"unreachable", []string{"--server", refused, "--topic", "t"}, 3, "cannot reach the Herald server at " + refused + ": dial tcp"},
		{"unreachable, several streams", []string{"--server", refused, "--topic", "t", "--topic", "u", "--format", "json"}, 3, "cannot reach the Herald server"},
		{"refused", []string{"--server", srv.URL, "--topic", "a\x01"}, 1, "subscribe refused: 400 Bad Request: invalid topic: contains control character"},
		{"refused, one of several streams", []string{"--server", srv.URL, "--topic", "ok", "--topic", "", "--format", "json"}, 1, `subscribe refused (topic ""): 400 Bad Request: invalid topic: empty`},
		{"not Herald", []string{"--server", srv.URL + "/nothing", "--topic", "t"}, 1, "404 Not Found: no such endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			code, out, errOut := herald(ctx, "", nil, append([]string{"subscribe"}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.stderr) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errOut, tt.code, tt.stderr)
			}
		})
	}
}

func TestSubscribeHelp(t *testing.T) {
	code, out, _ := herald(t.Context(), "", nil, "subscribe", "--help")
	for _, want := range []string{"Usage: herald subscribe --topic T [--topic U] [--last-event-id ID] [--format text|json]", "--server", "HERALD_SERVER", "--last-event-id", `(default "text")`, "one stream per topic", "Exit status"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("exit %d", code)
	}
}
