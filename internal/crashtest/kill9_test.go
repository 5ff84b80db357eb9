// Package crashtest checks what survives a restart or a crash of `herald
// serve --data-dir`: it runs the real binary, kills it with SIGKILL while
// clients publish, restarts it on the same directory, and checks that every
// publish that was acknowledged is still there and resumable in the same
// epoch.
package crashtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const publishers = 8

// acked is a publish that got 200 and an id.
type acked struct {
	topic string
	id    pubsub.Position
	data  string
}

// TestKill9LosesNothingAcknowledged publishes concurrently to a durable
// herald, kills it with SIGKILL mid-publish, restarts it, and checks that
// every acknowledged event is in history, in order, in the same epoch, and
// that a client resumes from any of them. It does so over three crashes.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the herald binary")
	}
	bin := testkit.BuildHerald(t)
	dir := t.TempDir()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: publishers}}
	defer client.CloseIdleConnections()

	var all []acked
	epoch := ""
	for round := range 3 {
		srv := startHerald(t, bin, dir)
		e := srv.epoch(t, client)
		if epoch == "" {
			epoch = e
		} else if e != epoch {
			t.Fatalf("round %d: epoch %q after the crash, want %q", round, e, epoch)
		}
		verify(t, client, srv.url, epoch, all, round)

		got, failed := publishUntilKilled(t, client, srv, round)
		t.Logf("round %d: %d publishes acknowledged before SIGKILL, %d cut off by it", round, len(got), failed)
		if len(got) == 0 {
			t.Fatalf("round %d: nothing was acknowledged", round)
		}
		for _, a := range got {
			if a.id.Epoch != epoch {
				t.Fatalf("round %d: id %v of another epoch than %q", round, a.id, epoch)
			}
		}
		all = append(all, got...)
	}
	srv := startHerald(t, bin, dir)
	if e := srv.epoch(t, client); e != epoch {
		t.Fatalf("epoch %q after the last crash, want %q", e, epoch)
	}
	verify(t, client, srv.url, epoch, all, 3)
	srv.stop(t)
}

type server struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{} // closed when the process has exited
}

// startHerald runs `herald serve --data-dir dir` on a loopback port and
// waits until it listens.
func startHerald(t *testing.T, bin, dir string) *server {
	t.Helper()
	return runHerald(t, bin,
		"--data-dir", dir,
		"--history-max-events", "0", // keep everything: the test checks all of it
		"--history-max-age", "0",
		"--publish-rate", "0") // the test publishes as fast as it can
}

// runHerald runs `herald serve` with args on a loopback port and waits
// until it listens.
func runHerald(t *testing.T, bin string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "HERALD_LOG_LEVEL=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "herald listening" {
				addr <- line.Addr
			}
			if os.Getenv("HERALD_TEST_LOG") != "" {
				fmt.Fprintf(os.Stderr, "herald[%d]: %s\n", cmd.Process.Pid, sc.Bytes())
			}
		}
		io.Copy(io.Discard, stderr)
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
	select {
	case a := <-addr:
		s.url = "http://" + a
	case <-s.done:
		t.Fatal("herald exited before listening (run with HERALD_TEST_LOG=1 to see its log)")
	case <-time.After(30 * time.Second):
		t.Fatal("herald did not listen within 30s")
	}
	return s
}

// epoch returns the epoch the server reports on /readyz.
func (s *server) epoch(t *testing.T, c *http.Client) string {
	t.Helper()
	resp, err := c.Get(s.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ Epoch string }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != 200 || !pubsub.ValidEpoch(r.Epoch) {
		t.Fatalf("/readyz: %d %+v %v", resp.StatusCode, r, err)
	}
	return r.Epoch
}

// stop ends the server gracefully (SIGTERM) and waits for it.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("herald did not stop within 30s of SIGINT")
	}
}

// publishUntilKilled runs concurrent publishers against srv and kills srv
// with SIGKILL while they publish. It returns what was acknowledged, and
// how many publishes failed because of the kill.
func publishUntilKilled(t *testing.T, c *http.Client, srv *server, round int) ([]acked, int) {
	var (
		mu      sync.Mutex
		got     []acked
		count   atomic.Int64
		failed  atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		hardErr error
		broken  atomic.Bool
	)
	fail := func(err error) {
		errOnce.Do(func() { hardErr = err })
		broken.Store(true)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for g := range publishers {
		wg.Go(func() {
			topic := fmt.Sprintf("k%d", g)
			for i := 0; ctx.Err() == nil; i++ {
				data := fmt.Sprintf("r%d-p%d-%d", round, g, i)
				body := fmt.Sprintf(`{"topic":%q,"data":%q}`, topic, data)
				resp, err := c.Post(srv.url+"/publish", "application/json", strings.NewReader(body))
				if err != nil {
					failed.Add(1) // the server died under this request
					return
				}
				raw, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					failed.Add(1)
					return
				}
				if resp.StatusCode != http.StatusOK {
					fail(fmt.Errorf("publish: %d %s", resp.StatusCode, raw))
					return
				}
				var r struct{ ID string }
				if err := json.Unmarshal(raw, &r); err != nil {
					fail(fmt.Errorf("publish answer %q: %v", raw, err))
					return
				}
				pos, err := pubsub.ParsePosition(r.ID)
				if err != nil {
					fail(err)
					return
				}
				mu.Lock()
				got = append(got, acked{topic: topic, id: pos, data: data})
				mu.Unlock()
				count.Add(1)
			}
		})
	}
	// Kill once a few hundred publishes went through, while the
	// publishers are still going.
	testkit.WaitWithin(t, 20*time.Second, "300 publishes acknowledged (or a publisher to break)", func() bool {
		return count.Load() >= 300 || broken.Load()
	})
	if err := srv.cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	<-srv.done
	cancel()
	wg.Wait()
	c.CloseIdleConnections()
	if hardErr != nil {
		t.Fatal(hardErr)
	}
	return got, int(failed.Load())
}

// verify checks that every acknowledged event is in the server's history,
// once, with its data, in the epoch, and that a client resumes exactly from
// the middle of a topic.
func verify(t *testing.T, c *http.Client, url, epoch string, all []acked, round int) {
	t.Helper()
	byTopic := make(map[string][]acked)
	for _, a := range all {
		byTopic[a.topic] = append(byTopic[a.topic], a)
	}
	for g := range publishers {
		topic := fmt.Sprintf("k%d", g)
		want := byTopic[topic]
		history := readTopic(t, c, url, topic, pubsub.Position{Epoch: epoch}.String(), round)
		at := make(map[pubsub.Position]int, len(history))
		for i, ev := range history {
			if i > 0 && ev.id.Offset <= history[i-1].id.Offset {
				t.Fatalf("round %d, %s: id %v after %v", round, topic, ev.id, history[i-1].id)
			}
			at[ev.id] = i
		}
		for _, a := range want {
			i, ok := at[a.id]
			if !ok {
				t.Fatalf("round %d, %s: acknowledged event %v (%s) lost", round, topic, a.id, a.data)
			}
			if history[i].data != a.data {
				t.Fatalf("round %d, %s: event %v has data %q, want %q", round, topic, a.id, history[i].data, a.data)
			}
		}
		if len(want) < 2 {
			continue
		}
		// Resume from the middle: exactly what follows in history.
		mid := want[len(want)/2].id
		rest := readTopic(t, c, url, topic, mid.String(), round)
		suffix := history[at[mid]+1:]
		if len(rest) != len(suffix) {
			t.Fatalf("round %d, %s: resuming after %v gave %d events, want %d", round, topic, mid, len(rest), len(suffix))
		}
		for i := range rest {
			if rest[i] != suffix[i] {
				t.Fatalf("round %d, %s: resuming after %v: event %d is %v, want %v", round, topic, mid, i, rest[i], suffix[i])
			}
		}
	}
}

type event struct {
	id   pubsub.Position
	data string
}

// readTopic subscribes to topic from lastEventID and returns the events up
// to a sentinel it publishes first, failing on a herald.reset.
func readTopic(t *testing.T, c *http.Client, url, topic, lastEventID string, round int) []event {
	t.Helper()
	sentinel := fmt.Sprintf("sentinel-%d-%d", round, time.Now().UnixNano())
	resp, err := c.Post(url+"/publish", "application/json", strings.NewReader(fmt.Sprintf(`{"topic":%q,"data":%q}`, topic, sentinel)))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish sentinel: %d", resp.StatusCode)
	}

	s := testkit.Subscribe(t, c, url+"/events?topic="+topic, testkit.LastEventID(lastEventID))
	defer s.Close()
	var out []event
	for {
		ev, err := s.NextWithin(20 * time.Second)
		if err != nil {
			t.Fatalf("%s from %s: stream ended before the sentinel: %v (%d events read)", topic, lastEventID, err, len(out))
		}
		if ev.Type == "herald.reset" {
			t.Fatalf("%s from %s: herald.reset %s", topic, lastEventID, ev.Data)
		}
		if ev.Data == sentinel {
			return out
		}
		if strings.HasPrefix(ev.Data, "sentinel-") {
			continue // an earlier verification's
		}
		pos, err := pubsub.ParsePosition(ev.ID)
		if err != nil {
			t.Fatalf("event id %q: %v", ev.ID, err)
		}
		out = append(out, event{id: pos, data: ev.Data})
	}
}
