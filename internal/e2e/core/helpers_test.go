// Package core_test checks Herald's core end to end over real loopback HTTP:
// GET /events, POST /publish, exact resume with Last-Event-ID, herald.reset,
// slow consumers, graceful shutdown (in process and of a real `herald serve`
// process), bad input, the probes and /metrics, and a native EventSource in
// a headless Chromium.
package core_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

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

func eventsURL(base string, topics ...string) string {
	return base + "/events?" + url.Values{"topic": topics}.Encode()
}

// open starts GET rawURL with Last-Event-ID lastID (if set), whatever
// the answer.
func open(t *testing.T, c *http.Client, rawURL, lastID string) (*http.Response, context.CancelFunc) {
	t.Helper()
	return testkit.Get(t, c, rawURL, testkit.LastEventID(lastID))
}

// subscribe opens a stream on rawURL and expects 200.
func subscribe(t *testing.T, c *http.Client, rawURL, lastID string) *testkit.Stream {
	t.Helper()
	return testkit.Subscribe(t, c, rawURL, testkit.LastEventID(lastID))
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
