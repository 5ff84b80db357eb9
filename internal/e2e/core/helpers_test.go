// Package core_test checks Herald's core end to end over real loopback HTTP:
// GET /events, POST /publish, exact resume with Last-Event-ID, herald.reset,
// slow consumers, graceful shutdown (in process and of a real `herald serve`
// process), bad input, the probes and /metrics, and a native EventSource in
// a headless Chromium.
package core_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// start runs a server with the defaults, except that the per-client publish
// rate limit and the request log are off (tests publish fast from one
// address), changed further by mutate.
func start(t *testing.T, mutate func(*config.Server)) *apptest.Server {
	t.Helper()
	return apptest.Start(t, func(c *config.Server) {
		c.HTTP.PublishRate = 0
		c.HTTP.LogRequests = false
		if mutate != nil {
			mutate(c)
		}
	})
}

// newClient returns an HTTP client whose idle connections are closed when
// the test ends, so that the leak check sees none.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// block is one blank-line-terminated block of a text/event-stream as the
// server wrote it. Unlike an EventSource it reports every block: comments,
// retry hints and id-only position markers too.
type block struct {
	ID, Event, Data string
	HasID, HasData  bool
	Retry           string
	Comments        []string
}

func (b block) String() string {
	var s []string
	if b.HasID {
		s = append(s, "id:"+b.ID)
	}
	if b.Event != "" {
		s = append(s, "event:"+b.Event)
	}
	if b.HasData {
		s = append(s, "data:"+b.Data)
	}
	if b.Retry != "" {
		s = append(s, "retry:"+b.Retry)
	}
	for _, c := range b.Comments {
		s = append(s, "comment:"+c)
	}
	return "{" + strings.Join(s, " ") + "}"
}

// readBlock reads the next block. The server writes LF line ends only.
func readBlock(br *bufio.Reader) (block, error) {
	var (
		b     block
		data  []string
		lines int
	)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && (line != "" || lines > 0) {
				err = fmt.Errorf("stream ended inside a block (%q): %w", line, io.ErrUnexpectedEOF)
			}
			return block{}, err
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if lines == 0 {
				continue
			}
			b.Data = strings.Join(data, "\n")
			return b, nil
		}
		lines++
		if c, ok := strings.CutPrefix(line, ":"); ok {
			b.Comments = append(b.Comments, strings.TrimPrefix(c, " "))
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "id":
			b.ID, b.HasID = value, true
		case "event":
			b.Event = value
		case "data":
			data = append(data, value)
			b.HasData = true
		case "retry":
			b.Retry = value
		default:
			return block{}, fmt.Errorf("unexpected field %q in %q", name, line)
		}
	}
}

// isEvent reports whether the block dispatches an event in a browser.
func (b block) isEvent() bool { return b.HasData }

// stream is an open GET /events whose blocks a goroutine reads.
type stream struct {
	resp   *http.Response
	blocks chan block
	done   chan error // receives once: nil at a clean end of the stream
	cancel context.CancelFunc
}

func eventsURL(base string, topics ...string) string {
	return base + "/events?" + url.Values{"topic": topics}.Encode()
}

// open starts GET rawURL with Last-Event-ID lastID (if set).
func open(t *testing.T, c *http.Client, rawURL, lastID string) (*http.Response, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	return resp, cancel
}

// subscribe opens a stream on rawURL and expects 200.
func subscribe(t *testing.T, c *http.Client, rawURL, lastID string) *stream {
	t.Helper()
	resp, cancel := open(t, c, rawURL, lastID)
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s (Last-Event-ID %q): %d %s", rawURL, lastID, resp.StatusCode, body)
	}
	s := &stream{resp: resp, blocks: make(chan block, 1024), done: make(chan error, 1), cancel: cancel}
	go func() {
		br := bufio.NewReader(resp.Body)
		for {
			b, err := readBlock(br)
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				close(s.blocks)
				s.done <- err
				return
			}
			s.blocks <- b
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *stream) close() {
	s.cancel()
	s.resp.Body.Close()
	for range s.blocks {
	}
}

// next returns the next block, failing after timeout. ok is false at the
// end of the stream.
func (s *stream) next(t *testing.T) (b block, ok bool) {
	t.Helper()
	select {
	case b, ok = <-s.blocks:
		return b, ok
	case <-time.After(10 * time.Second):
		t.Fatal("no block from the stream within 10s")
	}
	return block{}, false
}

// nextEvent skips comments, retry hints and position markers.
func (s *stream) nextEvent(t *testing.T) block {
	t.Helper()
	for {
		b, ok := s.next(t)
		if !ok {
			t.Fatalf("stream ended (%v) while waiting for an event", <-s.done)
		}
		if b.isEvent() {
			return b
		}
	}
}

// nextID returns the next block that carries an id (an event or a
// position marker), skipping others.
func (s *stream) nextID(t *testing.T) block {
	t.Helper()
	for {
		b, ok := s.next(t)
		if !ok {
			t.Fatalf("stream ended (%v) while waiting for an id", <-s.done)
		}
		if b.HasID {
			return b
		}
	}
}

// end waits for the end of the stream and returns its error (nil: clean).
func (s *stream) end(t *testing.T) ([]block, error) {
	t.Helper()
	var rest []block
	timeout := time.After(10 * time.Second)
	for {
		select {
		case b, ok := <-s.blocks:
			if !ok {
				return rest, <-s.done
			}
			rest = append(rest, b)
		case <-timeout:
			t.Fatalf("stream did not end within 10s (got %v)", rest)
		}
	}
}

// publishReq is the JSON body of POST /publish.
type publishReq struct {
	Topic  string          `json:"topic,omitempty"`
	Topics []string        `json:"topics,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	Event  string          `json:"event,omitempty"`
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// post sends body to base+path with contentType and returns the status and
// the body.
func post(t testing.TB, c *http.Client, rawURL, contentType, body string) (int, []byte, http.Header) {
	t.Helper()
	resp, err := c.Post(rawURL, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: reading body: %v", rawURL, err)
	}
	return resp.StatusCode, b, resp.Header
}

// publish publishes data to topics with JSON and returns the event id.
func publish(t testing.TB, c *http.Client, base, data string, topics ...string) string {
	t.Helper()
	body, _ := json.Marshal(publishReq{Topics: topics, Data: jsonString(data)})
	status, resp, _ := post(t, c, base+"/publish", "application/json", string(body))
	if status != http.StatusOK {
		t.Fatalf("publish %q to %v: %d %s", data, topics, status, resp)
	}
	var r struct{ ID string }
	if err := json.Unmarshal(resp, &r); err != nil || r.ID == "" {
		t.Fatalf("publish answer %s: %v", resp, err)
	}
	return r.ID
}

// metrics scrapes /metrics.
func metrics(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue returns the value of the sample line that starts with name
// (with its labels, if any), or "" if there is none.
func metricValue(text, name string) string {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// noOpenStreams waits until the server has no subscription to topics and
// no open SSE connection left: none leaked. (Other features may hold
// subscriptions of their own, so only the test's topics are counted.)
func noOpenStreams(t *testing.T, c *http.Client, srv *apptest.Server, topics ...string) {
	t.Helper()
	testkit.WaitFor(t, "every subscription to close", func() bool {
		counts := srv.App.Hub().TopicCounts()
		for _, topic := range topics {
			if counts[topic] != 0 {
				return false
			}
		}
		return metricValue(metrics(t, c, srv.URL), `herald_connections{transport="sse"}`) == "0"
	})
}

// subscribers returns the number of subscriptions to topic.
func subscribers(srv *apptest.Server, topic string) int {
	return srv.App.Hub().TopicCounts()[topic]
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(bytes.TrimSpace(b), v); err != nil {
		t.Fatalf("not JSON: %q: %v", b, err)
	}
}
