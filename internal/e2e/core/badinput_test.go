package core_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
)

// Every bad request gets a 4xx with a JSON body {"error": "..."} naming
// what was wrong, quickly, and publishes nothing.
func TestBadInput(t *testing.T) {
	srv := start(t, func(c *config.Server) {
		c.Limits.MaxDataBytes = 1024
		c.Limits.MaxTopics = 3
		c.Limits.MaxBatch = 4
	})
	c := newClient(t)
	long := strings.Repeat("t", 257)
	const form, js = "application/x-www-form-urlencoded", "application/json"
	big := strings.Repeat("x", 1025)

	for _, tc := range []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		status      int
		mention     string // the error names what was wrong
	}{
		// POST /publish
		{"publish: missing topic (JSON)", "POST", "/publish", js, `{"data":"x"}`, 400, "topic"},
		{"publish: missing topic (form)", "POST", "/publish", form, `data=x`, 400, "topic"},
		{"publish: empty topic", "POST", "/publish", js, `{"topics":[""]}`, 400, "empty"},
		{"publish: empty topic (form)", "POST", "/publish", form, `topic=&data=x`, 400, "empty"},
		{"publish: over-long topic", "POST", "/publish", js, `{"topic":"` + long + `"}`, 400, "256"},
		{"publish: control character in topic", "POST", "/publish", js, `{"topic":"a\u0001b"}`, 400, "control"},
		{"publish: DEL in topic (form)", "POST", "/publish", form, `topic=a%7Fb`, 400, "control"},
		{"publish: invalid UTF-8 topic (form)", "POST", "/publish", form, `topic=a%FFb`, 400, "UTF-8"},
		{"publish: event with LF", "POST", "/publish", js, `{"topic":"a","event":"x\ny"}`, 400, "event type"},
		{"publish: event with CR (form)", "POST", "/publish", form, `topic=a&event=x%0Dy`, 400, "event type"},
		{"publish: reserved event type", "POST", "/publish", js, `{"topic":"a","event":"herald.reset"}`, 400, "reserved"},
		{"publish: over-long event type", "POST", "/publish", js, `{"topic":"a","event":"` + long + `"}`, 400, "event type"},
		{"publish: data over --max-data-bytes (JSON)", "POST", "/publish", js, `{"topic":"a","data":"` + big + `"}`, 413, "1024"},
		{"publish: data over --max-data-bytes (form)", "POST", "/publish", form, `topic=a&data=` + big, 413, "1024"},
		{"publish: JSON value data over the limit", "POST", "/publish", js, `{"topic":"a","data":["` + big + `"]}`, 413, "1024"},
		{"publish: body far over the limit", "POST", "/publish", js, `{"topic":"a","data":"` + strings.Repeat("x", 200<<10) + `"}`, 413, "bytes"},
		{"publish: wrong content type", "POST", "/publish", "text/plain", `topic=a`, 415, "Content-Type"},
		{"publish: no content type", "POST", "/publish", "", `{"topic":"a"}`, 415, "Content-Type"},
		{"publish: multipart", "POST", "/publish", "multipart/form-data; boundary=x", "--x--", 415, "Content-Type"},
		{"publish: malformed JSON", "POST", "/publish", js, `{"topic":`, 400, "JSON"},
		{"publish: empty JSON body", "POST", "/publish", js, ``, 400, "JSON"},
		{"publish: JSON not an object", "POST", "/publish", js, `"a"`, 400, "JSON"},
		{"publish: unknown JSON field", "POST", "/publish", js, `{"topic":"a","colour":"red"}`, 400, "colour"},
		{"publish: unknown form field", "POST", "/publish", form, `topic=a&colour=red`, 400, "colour"},
		{"publish: trailing JSON", "POST", "/publish", js, `{"topic":"a"} {"topic":"b"}`, 400, "JSON"},
		{"publish: topic and topics", "POST", "/publish", js, `{"topic":"a","topics":["b"]}`, 400, "topic"},
		{"publish: too many topics", "POST", "/publish", js, `{"topics":["a","b","c","d"]}`, 400, "too many topics"},
		{"publish: too many topics (form)", "POST", "/publish", form, `topic=a&topic=b&topic=c&topic=d`, 400, "too many topics"},
		{"publish: invalid UTF-8 data (form)", "POST", "/publish", form, `topic=a&data=%FF`, 400, "UTF-8"},
		{"publish: invalid UTF-8 in a JSON string", "POST", "/publish", js, "{\"topic\":\"a\",\"data\":\"\xff\"}", 400, "UTF-8"},
		{"publish: invalid UTF-8 topic in JSON", "POST", "/publish", js, "{\"topic\":\"a\xc0\"}", 400, "UTF-8"},
		{"publish: data field twice (form)", "POST", "/publish", form, `topic=a&data=1&data=2`, 400, "data"},
		{"publish: not a boolean (form)", "POST", "/publish", form, `topic=a&retain=maybe`, 400, "retain"},
		{"publish: malformed form", "POST", "/publish", form, `topic=a&data=%zz`, 400, "form"},
		{"publish: empty batch", "POST", "/publish", js, `[]`, 400, "batch"},
		{"publish: batch over --max-batch", "POST", "/publish", js, `[{"topic":"a"},{"topic":"a"},{"topic":"a"},{"topic":"a"},{"topic":"a"}]`, 400, "batch"},
		{"publish: batch with one bad event", "POST", "/publish", js, `[{"topic":"a","data":"ok"},{"topic":"a","event":"herald.x"}]`, 400, "event 1"},
		{"publish: batch with data over the limit", "POST", "/publish", js, `[{"topic":"a","data":"ok"},{"topic":"a","data":"` + big + `"}]`, 413, "event 1"},
		{"publish: wrong method", "GET", "/publish", "", "", 405, "POST"},
		{"publish: PUT", "PUT", "/publish", js, `{"topic":"a"}`, 405, "POST"},

		// GET /events
		{"events: missing topic", "GET", "/events", "", "", 400, "topic"},
		{"events: empty topic", "GET", "/events?topic=", "", "", 400, "empty"},
		{"events: over-long topic", "GET", "/events?topic=" + long, "", "", 400, "256"},
		{"events: control character", "GET", "/events?topic=a%01", "", "", 400, "control"},
		{"events: LF in topic", "GET", "/events?topic=a%0Ab", "", "", 400, "control"},
		{"events: invalid UTF-8 topic", "GET", "/events?topic=%FF", "", "", 400, "UTF-8"},
		{"events: too many topics", "GET", "/events?topic=a&topic=b&topic=c&topic=d", "", "", 400, "too many topics"},
		{"events: wrong method", "POST", "/events?topic=a", form, "", 405, "GET"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading the answer (after %v): %v", time.Since(start), err)
			}
			var e struct {
				Error string `json:"error"`
			}
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d (body %s)", resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Fatalf("body %q is not {\"error\": ...}", body)
			}
			if !strings.Contains(strings.ToLower(e.Error), strings.ToLower(tc.mention)) {
				t.Errorf("error %q does not mention %q", e.Error, tc.mention)
			}
			if tc.status == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	if n := srv.App.Hub().Stats().Published; n != 0 {
		t.Errorf("%d events published by bad requests", n)
	}
	if n := subscribers(srv, "a"); n != 0 {
		t.Errorf("%d subscriptions open after bad requests", n)
	}
	// Every refusal is counted.
	m := metrics(t, c, srv.URL)
	if !strings.Contains(m, "herald_requests_rejected_total{reason=") {
		t.Error("rejections not counted in /metrics")
	}
}

// The edge of each limit is accepted.
func TestLimitsAreInclusive(t *testing.T) {
	srv := start(t, func(c *config.Server) {
		c.Limits.MaxDataBytes = 1024
		c.Limits.MaxTopics = 3
		c.Limits.MaxBatch = 4
	})
	c := newClient(t)
	t256 := strings.Repeat("t", 256)
	for _, body := range []string{
		`{"topic":"` + t256 + `","data":"` + strings.Repeat("x", 1024) + `"}`,
		`{"topics":["a","b","c"],"event":"` + strings.Repeat("e", 256) + `"}`,
		`[{"topic":"a"},{"topic":"a"},{"topic":"a"},{"topic":"a"}]`,
		`{"topic":"a","event":"heraldish","data":"é \u2028 😀"}`,
	} {
		if status, resp, _ := post(t, c, srv.URL+"/publish", "application/json", body); status != 200 {
			t.Errorf("%.60s…: %d %s", body, status, resp)
		}
	}
	s := subscribe(t, c, eventsURL(srv.URL, t256, "b", "c"), "")
	s.NextID(t)
	q := url.Values{"topic": {"a"}, "data": {strings.Repeat("y", 1024)}}
	if status, resp, _ := post(t, c, srv.URL+"/publish", "application/x-www-form-urlencoded", q.Encode()); status != 200 {
		t.Errorf("form at the limit: %d %s", status, resp)
	}
}
