package streams_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/browsertest"
)

// scenario is what testdata/node/client.mjs reports.
type scenario struct {
	CatchUp  []map[string]int `json:"catchUp"`
	Offset   string           `json:"offset"`
	SSE      []map[string]int `json:"sse"`
	Closed   *bool            `json:"closed"`
	LongPoll string           `json:"longPoll"`
	BinaryOK bool             `json:"binaryOK"`
}

// check fails t unless the scenario saw exactly what was written.
func (s scenario) check(t *testing.T) {
	t.Helper()
	items := func(from, to int) []map[string]int {
		var out []map[string]int
		for n := from; n <= to; n++ {
			out = append(out, map[string]int{"n": n})
		}
		return out
	}
	if !reflect.DeepEqual(s.CatchUp, items(1, 5)) || s.Offset == "" {
		t.Errorf("catch-up read %v at %q, want items 1 to 5", s.CatchUp, s.Offset)
	}
	if !reflect.DeepEqual(s.SSE, items(6, 8)) {
		t.Errorf("live SSE read %v, want items 6 to 8", s.SSE)
	}
	if s.Closed == nil || !*s.Closed {
		t.Errorf("after the producer's close, HEAD says closed %v", s.Closed)
	}
	if s.LongPoll != "hello world" {
		t.Errorf("live long-poll read %q, want %q", s.LongPoll, "hello world")
	}
	if !s.BinaryOK {
		t.Error("the binary stream did not read back byte for byte")
	}
}

// TestClientInNode: the project's TypeScript client (@durable-streams/client
// 0.2.7, unmodified) creates, appends (plainly and as an idempotent
// producer), reads catch-up and follows live (SSE, long-poll) a Herald
// stream in Node, on each broker.
func TestClientInNode(t *testing.T) {
	dir := npmDir(t)
	for _, bc := range brokers() {
		t.Run(bc.name, func(t *testing.T) {
			n := startHerald(t, append(bc.flags(t), "--ds-long-poll-timeout", "5s")...)
			cmd := exec.CommandContext(t.Context(), "node", "node.mjs", n.URL, "node-"+bc.name)
			cmd.Dir = dir
			out, err := cmd.Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				t.Fatalf("node.mjs: %v\n%s\nherald's log:\n%s", err, stderr, tail(n.out.String(), 4000))
			}
			var s scenario
			if err := json.Unmarshal(out, &s); err != nil {
				t.Fatalf("node.mjs printed %q: %v", out, err)
			}
			s.check(t)
		})
	}
}

// TestClientInChromium: the same client, bundled by esbuild into a page of
// another origin (allowed by --cors-origins), does the same in a real
// Chromium: SSE and long-poll through the browser's fetch, CORS preflights
// for the protocol's headers.
func TestClientInChromium(t *testing.T) {
	dir := npmDir(t)
	bundle := filepath.Join(t.TempDir(), "page.js")
	esbuild := exec.Command(filepath.Join(dir, "node_modules", ".bin", "esbuild"), "page.mjs", "--bundle", "--format=esm", "--platform=browser", "--outfile="+bundle, "--log-level=warning")
	esbuild.Dir = dir
	if out, err := esbuild.CombinedOutput(); err != nil {
		t.Fatalf("esbuild: %v\n%s", err, out)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><title>Durable Streams on Herald</title><script type="module" src="/page.js"></script>`)
	})
	mux.HandleFunc("GET /page.js", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, bundle) })
	page := httptest.NewServer(mux)
	t.Cleanup(page.Close)
	n := startHerald(t, "--cors-origins", page.URL, "--ds-long-poll-timeout", "5s")
	// Started last, so closed first.
	ctx := browsertest.New(t, 90*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(page.URL+"/?herald="+url.QueryEscape(n.URL))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.heraldTest && window.heraldTest.done`, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		t.Fatalf("waiting for the page's scenario: %v\nherald's log:\n%s", err, tail(n.out.String(), 4000))
	}
	type result struct {
		Error string   `json:"error"`
		Out   scenario `json:"out"`
	}
	res, err := chromedp.Run(ctx, chromedp.Evaluate[result](`window.heraldTest`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Error != "" {
		t.Fatalf("the page's scenario failed: %s\nherald's log:\n%s", res.Error, tail(n.out.String(), 4000))
	}
	res.Out.check(t)
}
