package aisdk_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/browsertest"
	"github.com/heraldpush/herald/internal/chat"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/llm/openaitest"
	"github.com/heraldpush/herald/internal/testkit"
)

// The tests in this file run the unmodified `ai` package from npm (the AI
// SDK) against Herald: in Node (node.mjs) and in Chromium (page.mjs,
// bundled by esbuild from node_modules). The packages are pinned in
// testdata/node/package-lock.json; scripts/test.sh installs them (npm ci),
// and so does the first test that needs them when they are missing.

var (
	npmOnce sync.Once
	npmErr  string
)

// npmDir returns the folder of the npm tests, with its packages installed.
// Without node or npm the test fails when CI is set, and is skipped, saying
// why, otherwise.
func npmDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("testdata", "node"))
	if err != nil {
		t.Fatal(err)
	}
	absent := func(msg string) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("%s (CI is set: scripts/test.sh must install it)", msg)
		}
		t.Skipf("%s: the AI SDK tests need Node.js and npm (scripts/test.sh installs them)", msg)
	}
	if _, err := exec.LookPath("node"); err != nil {
		absent("node not found")
	}
	npmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "ai", "package.json")); err == nil {
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
		absent(npmErr)
	} else if npmErr != "" {
		t.Fatal(npmErr)
	}
	return dir
}

// control is the test's own server, which the JavaScript side calls to
// release the held upstream (POST /release) and to cut the streams of an
// answer (POST /cut?id=<message id>).
func control(t testing.TB, srv *apptest.Server, release func()) string {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /release", func(w http.ResponseWriter, r *http.Request) {
		release()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /cut", func(w http.ResponseWriter, r *http.Request) {
		if srv.App.Hub().Disconnect(chat.TopicPrefix+r.URL.Query().Get("id")) == 0 {
			http.Error(w, "no stream to cut", http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	c := httptest.NewServer(mux)
	t.Cleanup(c.Close)
	return c.URL
}

// chatSummary is what chat.mjs's summary() tells of a chat.
type chatSummary struct {
	Status     string `json:"status"`
	Error      string `json:"error"`
	Text       string `json:"text"`
	Assistants int    `json:"assistants"`
	MessageID  string `json:"messageId"`
}

// runNode runs a scenario of node.mjs against srv and decodes its result.
func runNode(t testing.TB, dir, scenario string, srv *apptest.Server, ctl string, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "node.mjs", scenario, srv.URL, ctl)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("node node.mjs %s: %v\n%s", scenario, err, stderr.String())
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("node node.mjs %s printed %q: %v\n%s", scenario, stdout, err, stderr.String())
	}
}

// The SDK's stop() closes the connection only: the answer goes on, and a
// new chat with the same id (a reloaded page) resumes it with
// resumeStream(): it gets the whole answer, once, and the model was asked
// once.
func TestSDKStopThenResume(t *testing.T) {
	dir := npmDir(t)
	up, release := gated(t, 150, 40)
	srv := start(t, up, nil)
	var res struct {
		AfterStop      chatSummary `json:"afterStop"`
		ReplayedPrefix string      `json:"replayedPrefix"`
		Resumed        chatSummary `json:"resumed"`
	}
	runNode(t, dir, "stop-and-resume", srv, control(t, srv, release), &res)
	want := up.Script().Text()
	if res.AfterStop.Status != "ready" || res.AfterStop.Error != "" || res.AfterStop.Text == "" || !strings.HasPrefix(want, res.AfterStop.Text) || len(res.AfterStop.Text) >= len(want) {
		t.Fatalf("after stop(): %+v; want ready with part of the answer", res.AfterStop)
	}
	if !strings.HasPrefix(res.ReplayedPrefix, res.AfterStop.Text) {
		t.Fatalf("the replay starts %q, not with the text the chat had %q", res.ReplayedPrefix, res.AfterStop.Text)
	}
	if r := res.Resumed; r.Status != "ready" || r.Error != "" || r.Text != want || r.Assistants != 1 || r.MessageID != res.AfterStop.MessageID {
		t.Fatalf("resumed chat: %+v\nwant ready, one assistant message %q with the text %q", r, res.AfterStop.MessageID, want)
	}
	if up.Calls() != 1 || up.Aborted() != 0 {
		t.Fatalf("upstream: %d calls, %d aborted; want one call, not aborted", up.Calls(), up.Aborted())
	}
}

// A stream the server cuts mid-answer is an error for the SDK, never a
// short answer taken as whole; resumeStream() then completes the answer.
func TestSDKServerCutThenResume(t *testing.T) {
	dir := npmDir(t)
	up, release := gated(t, 150, 40)
	srv := start(t, up, nil)
	var res struct {
		AfterCut chatSummary `json:"afterCut"`
		Resumed  chatSummary `json:"resumed"`
	}
	runNode(t, dir, "cut-and-resume", srv, control(t, srv, release), &res)
	want := up.Script().Text()
	if res.AfterCut.Status != "error" || len(res.AfterCut.Text) >= len(want) {
		t.Fatalf("after the cut: %+v; want an error, with part of the answer", res.AfterCut)
	}
	if r := res.Resumed; r.Status != "ready" || r.Text != want || r.Assistants != 1 {
		t.Fatalf("resumed chat: %+v\nwant ready, one assistant message with the text %q", r, want)
	}
	if up.Calls() != 1 {
		t.Fatalf("upstream called %d times, want once", up.Calls())
	}
}

// The stop endpoint as the SDK's docs call it stops the generation (the
// upstream request is cancelled) and keeps the partial answer; a resume
// afterwards finds nothing active.
func TestSDKStopEndpoint(t *testing.T) {
	dir := npmDir(t)
	up, release := gated(t, 100, 30)
	srv := start(t, up, nil)
	var res struct {
		StopAnswer  struct{ Stopped bool } `json:"stopAnswer"`
		AfterStop   chatSummary            `json:"afterStop"`
		AfterResume chatSummary            `json:"afterResume"`
	}
	runNode(t, dir, "stop-endpoint", srv, control(t, srv, release), &res)
	if !res.StopAnswer.Stopped || res.AfterStop.Status != "ready" || res.AfterResume != res.AfterStop {
		t.Fatalf("stop %+v, after stop() %+v, after resumeStream() %+v; want stopped, ready, unchanged by the resume", res.StopAnswer, res.AfterStop, res.AfterResume)
	}
	var d chat.Done
	fin := finalEvent(t, srv.URL, res.AfterStop.MessageID)
	if json.Unmarshal([]byte(fin.Data), &d) != nil || !d.Stopped || !strings.HasPrefix(d.Text, res.AfterStop.Text) || d.Text != strings.Join(words(100)[:30], "") {
		t.Fatalf("stored end %s %s; want stopped after 30 tokens, starting with what the client had (%q)", fin.Type, fin.Data, res.AfterStop.Text)
	}
	release()
	testkit.WaitFor(t, "the upstream request to be cancelled", func() bool { return up.Aborted() == 1 })
}

func TestSDKNothingToResume(t *testing.T) {
	dir := npmDir(t)
	up := openaitest.New(t, openaitest.Script{Tokens: words(3)})
	srv := start(t, up, nil)
	var res struct {
		AfterResume chatSummary `json:"afterResume"`
		Messages    int         `json:"messages"`
	}
	runNode(t, dir, "nothing-to-resume", srv, control(t, srv, func() {}), &res)
	if res.AfterResume.Status != "ready" || res.AfterResume.Error != "" || res.Messages != 0 {
		t.Fatalf("after resumeStream() of a new chat: %+v, %d messages; want ready, nothing", res.AfterResume, res.Messages)
	}
}

// In a real Chromium, a page using the AI SDK (bundled from node_modules,
// served by the test, calling Herald on another origin) asks a question,
// is reloaded mid-answer, and resumes on load as useChat({ resume: true })
// does: it ends with the whole answer, once, and the model was asked once.
func TestSDKInChromiumSurvivesReload(t *testing.T) {
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
		io.WriteString(w, `<!doctype html><title>AI SDK on Herald</title><script type="module" src="/page.js"></script>`)
	})
	mux.HandleFunc("GET /page.js", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, bundle) })
	page := httptest.NewServer(mux)
	t.Cleanup(page.Close)

	up, release := gated(t, 150, 40)
	srv := start(t, up, func(c *config.Server) { c.HTTP.CORSOrigins = config.Strings{page.URL} })
	want := strings.Join(words(150), "")
	// Started last, so closed first: the servers' shutdowns do not wait
	// for the browser's connections.
	ctx := browsertest.New(t, 90*time.Second)
	poll := func(expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(40*time.Second))); err != nil {
			t.Fatalf("waiting for %s: %v", expr, err)
		}
	}
	summary := func() chatSummary {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[chatSummary](`window.heraldTest.summary()`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(page.URL+"/?herald="+url.QueryEscape(srv.URL))); err != nil {
		t.Fatal(err)
	}
	poll(`!!window.heraldTest`)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.heraldTest.send("Tell me a long story"), true`)); err != nil {
		t.Fatal(err)
	}
	poll(`window.heraldTest.summary().text.length >= 10`)
	before := summary()
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	poll(`window.heraldTest && window.heraldTest.loads === 2 && window.heraldTest.summary().status === "streaming"`)
	release()
	poll(`window.heraldTest.resumed`)
	after := summary()
	if after.Status != "ready" || after.Error != "" || after.Text != want || after.Assistants != 1 || after.MessageID != before.MessageID {
		t.Fatalf("after the reload: %+v\nbefore: %+v\nwant ready, one assistant message with the text %q", after, before, want)
	}
	if up.Calls() != 1 || up.Aborted() != 0 {
		t.Fatalf("upstream: %d calls, %d aborted; want one call, not aborted", up.Calls(), up.Aborted())
	}
}
