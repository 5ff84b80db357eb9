package cli_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/cli"
	"github.com/heraldpush/herald/pubsub"
)

// syncBuffer is an output that may be read while a command writes it; each
// write wakes up readers waiting in waitFor.
type syncBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	wake chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{wake: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// herald runs the herald command in-process and returns its exit code and
// outputs. env sets environment variables (none by default).
func herald(ctx context.Context, stdin string, env map[string]string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = cli.Main(ctx, args, &cli.Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { return env[k] },
	})
	return code, out.String(), errOut.String()
}

// refusedAddr returns a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return "http://" + ln.Addr().String()
}

func TestPublishCommand(t *testing.T) {
	srv := apptest.Start(t, nil)
	ctx := t.Context()

	code, out, errOut := herald(ctx, "", nil, "publish", "--server", srv.URL, "--topic", "news", "--data", "Hello, Herald")
	id := strings.TrimSpace(out)
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if pos, err := pubsub.ParsePosition(id); err != nil || pos.Offset != 1 || out != id+"\n" {
		t.Fatalf("printed %q, want an event id and a newline", out)
	}

	// --data - reads standard input, without its final line end;
	// HERALD_SERVER stands for --server; --topic repeats.
	code, out, errOut = herald(ctx, "line 1\nline 2\r\n", map[string]string{"HERALD_SERVER": srv.URL},
		"publish", "--topic", "news", "--topic", "other", "--event", "note", "--retain", "--data", "-")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	id2 := strings.TrimSpace(out)
	snap := read(t, srv, []string{"news", "other"}, id)
	if len(snap) != 1 || snap[0].Pos.String() != id2 || snap[0].Data != "line 1\nline 2" || snap[0].Type != "note" || !snap[0].Retain || len(snap[0].Topics) != 2 {
		t.Fatalf("published %+v", snap)
	}

	// --final ends the topic; publishing to it again is refused with the
	// server's message.
	if code, _, errOut = herald(ctx, "", nil, "publish", "--server", srv.URL, "--topic", "job", "--data", "done", "--final"); code != 0 {
		t.Fatalf("final: exit %d, %q", code, errOut)
	}
	code, out, errOut = herald(ctx, "", nil, "publish", "--server", srv.URL, "--topic", "job", "--data", "late")
	if code != 1 || out != "" || !strings.Contains(errOut, "publish refused: 409 Conflict: ") || !strings.Contains(errOut, "finished") {
		t.Errorf("after final: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// read returns the messages of topics after id, from the server's broker.
func read(t *testing.T, srv *apptest.Server, topics []string, id string) []*pubsub.Message {
	t.Helper()
	after, err := pubsub.ParsePosition(id)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := srv.App.Hub().Broker().Read(t.Context(), pubsub.Query{Topics: topics, After: &after})
	if err != nil {
		t.Fatal(err)
	}
	return snap.Events
}

func TestPublishCommandErrors(t *testing.T) {
	srv := apptest.Start(t, nil)
	refused := refusedAddr(t)
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		stderr string
	}{
		{"missing topic", nil, []string{"--server", srv.URL, "--data", "x"}, 2, "missing --topic"},
		{"missing data", nil, []string{"--server", srv.URL, "--topic", "t"}, 2, "missing --data"},
		{"unknown flag", nil, []string{"--topic", "t", "--data", "x", "--nope"}, 2, "flag provided but not defined: -nope"},
		{"argument", nil, []string{"--topic", "t", "--data", "x", "extra"}, 2, `unexpected argument "extra"`},
		{"server not a URL", nil, []string{"--server", "localhost:8080", "--topic", "t", "--data", "x"}, 2, `--server: "localhost:8080" is not an http:// or https:// URL`},
		{"bad HERALD_SERVER", map[string]string{"HERALD_SERVER": "ftp://x"}, []string{"--topic", "t", "--data", "x"}, 2, `"ftp://x" is not`},
		{"flag wins over env", map[string]string{"HERALD_SERVER": "ftp://x"}, []string{"--server", refused, "--topic", "t", "--data", "x"}, 3, "cannot reach the Herald server at " + refused},
		{"unreachable", nil, []string{"--server", refused, "--topic", "t", "--data", "x"}, 3, "connection refused"},
		{"reserved type", nil, []string{"--server", srv.URL, "--topic", "t", "--data", "x", "--event", "herald.x"}, 1, `publish refused: 400 Bad Request: event type "herald.x" is reserved`},
		{"bad topic", nil, []string{"--server", srv.URL, "--topic", "a\x01", "--data", "x"}, 1, "400 Bad Request: invalid topic: contains control character"},
		{"default server", nil, []string{"--topic", "t", "--data", "x", "--server", ""}, 2, `--server: "" is not`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := herald(t.Context(), "", tt.env, append([]string{"publish"}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.stderr) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errOut, tt.code, tt.stderr)
			}
		})
	}
}

func TestPublishCommandHelp(t *testing.T) {
	code, out, _ := herald(t.Context(), "", nil, "publish", "--help")
	for _, want := range []string{"Usage: herald publish", "--server URL", "HERALD_SERVER", `(default "http://localhost:8080")`, "--data", "--event", "--retain", "--final", "Exit status"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("exit %d", code)
	}
}
