package demo_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/browsertest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/demo"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/sse"
)

// logRow is one row of the page's event log.
type logRow struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Data   string `json:"data"`
	Reason string `json:"reason"`
}

const readLog = `[...document.querySelectorAll("#log tr")].map(r => ({type: r.dataset.type, id: r.dataset.id, reason: r.dataset.reason || "", data: r.querySelector(".c-data").textContent}))`

// taskState reads task n's row: its state (running, done, interrupted),
// percentage and text.
const taskState = `((n) => { const r = document.querySelector('#tasks .task[data-task="' + n + '"]'); return r ? {state: r.dataset.state, stream: r.dataset.stream, pct: r.querySelector(".pct").textContent, text: r.textContent} : null; })`

type taskInfo struct {
	State  string `json:"state"`
	Stream string `json:"stream"`
	Pct    string `json:"pct"`
	Text   string `json:"text"`
}

// page is the demo page in a headless Chromium.
type page struct {
	t       *testing.T
	ctx     context.Context
	console *browsertest.Console
}

func openPage(t *testing.T, url string) *page {
	t.Helper()
	ctx := browsertest.New(t, 2*time.Minute)
	p := &page{t: t, ctx: ctx, console: browsertest.WatchConsole(t, ctx)}
	if err := chromedp.Do(ctx, chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.ID("connect"))); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *page) poll(what, expr string) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		state, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.getElementById("state").dataset.state`))
		rows, _ := chromedp.Run(p.ctx, chromedp.Evaluate[[]logRow](readLog))
		tasks, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.getElementById("tasks").textContent`))
		p.t.Fatalf("waiting for %s: %v (state %q, tasks %q, log %+v)", what, err, state, tasks, rows)
	}
}

func (p *page) click(id string) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, chromedp.Click(chromedp.ID(id))); err != nil {
		p.t.Fatal(err)
	}
}

func (p *page) task(n int) taskInfo {
	p.t.Helper()
	return browsertest.Eval[taskInfo](p.t, p.ctx, fmt.Sprintf("%s(%d)", taskState, n))
}

func (p *page) waitTask(n int, state string) {
	p.t.Helper()
	p.poll(fmt.Sprintf("task %d %s", n, state), fmt.Sprintf(`(%s(%d) || {}).state === %q`, taskState, n, state))
}

// The demo page in a real headless Chromium, driven as a user would: it
// connects, broadcasts, runs a task to the end; then it is looked at in
// every layout (1280 and 390 px, light and dark) with nothing to fix, and
// the console stays free of errors.
func TestDemoPageInChromium(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) {
		c.Demo.TaskInterval = 50 * time.Millisecond
		// The task stream's reconnect after its final event (which gets
		// 204) comes after the retry delay.
		c.Core.Retry = 200 * time.Millisecond
	})
	p := openPage(t, srv.URL)
	if s := browsertest.Eval[string](t, p.ctx, `document.getElementById("state").dataset.state`); s != "closed" {
		t.Fatalf("state before Connect: %q, want closed", s)
	}
	if got := browsertest.Eval[string](t, p.ctx, `document.getElementById("log-empty").textContent`); got != "Press Connect to open the stream." {
		t.Fatalf("empty log before Connect says %q", got)
	}

	// Connect: the state follows the EventSource's readyState to open, and
	// the greeting arrives.
	p.click("connect")
	p.poll("state open", `document.getElementById("state").dataset.state === "open" && document.getElementById("state-text").textContent === "open"`)
	p.poll("CONNECTED", `document.querySelector('#log tr[data-type="CONNECTED"]') !== null`)
	if got := browsertest.Eval[string](t, p.ctx, `document.querySelector('#log tr[data-type="CONNECTED"] .c-data').textContent`); got != demo.ConnectedText {
		t.Fatalf("CONNECTED data %q", got)
	}

	// Send Broadcast with the text box.
	const message = "Hello SSE"
	if err := chromedp.Do(p.ctx, chromedp.SetValue(chromedp.ID("message"), message)); err != nil {
		t.Fatal(err)
	}
	p.click("broadcast")
	p.poll("BROADCAST", `document.querySelector('#log tr[data-type="BROADCAST"]') !== null`)
	p.poll("broadcast answer", fmt.Sprintf(`document.getElementById("broadcast-result").textContent === %q`, "Broadcast message: "+message))
	rows := browsertest.Eval[[]logRow](t, p.ctx, readLog)
	bc := rows[slices.IndexFunc(rows, func(r logRow) bool { return r.Type == "BROADCAST" })]
	if bc.Data != message || bc.ID == "" {
		t.Fatalf("BROADCAST row %+v, want data %q and an id", bc, message)
	}

	// Start Task: every PROGRESS step, then COMPLETE, each with its own id;
	// the task's progress bar reaches 100%.
	p.click("start-task")
	p.poll("Task started!", `document.getElementById("task-result").textContent === "Task started!" || document.querySelector('#log tr[data-type="COMPLETE"]') !== null`)
	p.poll("COMPLETE", `document.querySelector('#log tr[data-type="COMPLETE"]') !== null`)
	// Task numbers are log positions (unique across restarts and nodes),
	// not 1, 2, 3: the newest row (first in the list) is this task's.
	p.poll("the task's row", `document.querySelector('#tasks .task') !== null`)
	n := browsertest.Eval[string](t, p.ctx, `document.querySelector('#tasks .task').dataset.task`)
	rows = browsertest.Eval[[]logRow](t, p.ctx, readLog)
	var steps []string
	ids := map[string]bool{}
	for _, r := range rows {
		if r.Type == "PROGRESS" || r.Type == "COMPLETE" {
			steps = append(steps, r.Type+" "+r.Data)
			if r.ID == "" || ids[r.ID] {
				t.Fatalf("%s %q: id %q missing or repeated", r.Type, r.Data, r.ID)
			}
			ids[r.ID] = true
		}
	}
	var want []string
	for p := 0; p <= 100; p += 10 {
		want = append(want, "PROGRESS "+percent(p))
	}
	want = append(want, "COMPLETE "+demo.CompleteText)
	if !slices.Equal(steps, want) {
		t.Fatalf("log shows %q, want %q", steps, want)
	}
	p.poll("bar at 100%", `(() => {
		const bar = document.querySelector('#tasks .task[data-task="`+n+`"] .bar');
		return bar && bar.getAttribute("aria-valuenow") === "100" && bar.querySelector(".fill").style.width === "100%" &&
			bar.closest(".task").classList.contains("done");
	})()`)
	// "Task started!" goes away once the task is over.
	p.poll("Task started! cleared", `document.getElementById("task-result").textContent === ""`)
	// The task stream ended with its final event; the EventSource's
	// reconnect got 204 and it is closed for good, and the task stays done.
	p.poll("task stream closed", `document.querySelector('#tasks .task[data-task="`+n+`"]').dataset.stream === "closed"`)
	num, _ := strconv.Atoi(n)
	if ti := p.task(num); ti.State != "done" || ti.Pct != "done" {
		t.Fatalf("task %s after its stream closed: %+v, want done", n, ti)
	}
	if s := browsertest.Eval[string](t, p.ctx, `document.getElementById("state").dataset.state`); s != "open" {
		t.Fatalf("demo stream state %q after the task, want open", s)
	}

	// Every layout: nothing to fix; on a phone the log's rows stack, the
	// data at (nearly) the full width of the row, rows short.
	browsertest.CheckLayouts(t, p.ctx, func(l browsertest.Layout) {
		type geometry struct {
			Row, Data, MaxHeight float64
		}
		g := browsertest.Eval[geometry](t, p.ctx, `(() => {
			const rows = [...document.querySelectorAll("#log tr")];
			return { row: rows[0].getBoundingClientRect().width, data: rows[0].querySelector(".c-data").getBoundingClientRect().width,
				maxHeight: Math.max(...rows.map((r) => r.getBoundingClientRect().height)) };
		})()`)
		if l.Phone && (g.Data < 0.85*g.Row || g.MaxHeight > 110) {
			t.Errorf("%s: log rows do not stack: data %.0f px wide in a %.0f px row, rows up to %.0f px tall", l.Name, g.Data, g.Row, g.MaxHeight)
		}
		if !l.Phone && g.Data < 300 {
			t.Errorf("%s: the data column is %.0f px wide", l.Name, g.Data)
		}
		switch l.Name {
		case "desktop-light":
			browsertest.Screenshot(t, p.ctx, filepath.Join("..", "..", "docs", "img", "demo.png"))
		case "phone-dark":
			browsertest.Screenshot(t, p.ctx, filepath.Join("..", "..", "docs", "img", "demo-phone-dark.png"))
		}
	})
	if err := (browsertest.Layout{Name: "desktop-light", Width: 1280, Height: 800, Scheme: "light"}).Apply(p.ctx); err != nil {
		t.Fatal(err)
	}

	// Data is shown as text, never as HTML.
	const markup = "<b>not bold</b>"
	if err := chromedp.Do(p.ctx, chromedp.SetValue(chromedp.ID("message"), markup)); err != nil {
		t.Fatal(err)
	}
	p.click("broadcast")
	p.poll("markup broadcast", fmt.Sprintf(`[...document.querySelectorAll('#log tr[data-type="BROADCAST"] .c-data')].some(td => td.textContent === %q)`, markup))
	if n := browsertest.Eval[int](t, p.ctx, `document.querySelectorAll("#log b, #broadcast-result b").length`); n != 0 {
		t.Fatal("broadcast data was rendered as HTML")
	}

	// Clear empties the log and the finished tasks, and says what comes
	// next while connected.
	p.click("clear")
	p.poll("cleared", `document.querySelectorAll("#log tr").length === 0 && document.querySelectorAll("#tasks .task").length === 0`)
	if got := browsertest.Eval[string](t, p.ctx, `document.getElementById("log-empty").hidden ? "(hidden)" : document.getElementById("log-empty").textContent`); got != "Connected. New events will appear here." {
		t.Fatalf("empty log while connected says %q", got)
	}

	// Disconnect closes the stream.
	p.click("disconnect")
	p.poll("state closed", `document.getElementById("state").dataset.state === "closed" && document.getElementById("connect").disabled === false`)
	p.console.NoErrors(t)
}

func TestDemoPageOpenedMidTaskShowsRetainedProgress(t *testing.T) {
	// Steps 1.5s apart, so that the page connects between two steps.
	srv := apptest.Start(t, func(c *config.Server) { c.Demo.TaskInterval = 1500 * time.Millisecond })
	p := openPage(t, srv.URL)
	n := startTask(t, srv.URL)
	// Watch the task over HTTP until it has reached 10%, then open the
	// page's stream.
	watch := open(t, fmt.Sprintf("%s/sse/subscribe?task=%d", srv.URL, n), "")
	var step sse.Event
	for step.Data != percent(10) {
		step = watch.Next(t)
	}
	p.click("connect")
	// The first PROGRESS the page shows is the retained 10% — the step
	// published before it connected, with that step's id — and the task's
	// bar shows 10%.
	p.poll("a PROGRESS row", `document.querySelector('#log tr[data-type="PROGRESS"]') !== null`)
	rows := browsertest.Eval[[]logRow](t, p.ctx, readLog)
	first := rows[slices.IndexFunc(rows, func(r logRow) bool { return r.Type == "PROGRESS" })]
	if first.Data != percent(10) || first.ID != step.ID {
		t.Fatalf("first PROGRESS on the page: %+v, want the retained %q with id %s", first, percent(10), step.ID)
	}
	sel := `#tasks .task[data-task="` + strconv.Itoa(n) + `"] .bar`
	p.poll("task bar", fmt.Sprintf(`(() => { const b = document.querySelector(%q); return b && Number(b.getAttribute("aria-valuenow")) >= 10; })()`, sel))
	// And it goes on from there with the live steps.
	p.poll("the next step", fmt.Sprintf(`[...document.querySelectorAll('#log tr[data-type="PROGRESS"] .c-data')].some(td => td.textContent === %q)`, percent(20)))
}

// A reload mid-task: the page connects again by itself and shows the
// running task with its progress at once, before the task's next step.
func TestDemoPageReconnectsAfterReload(t *testing.T) {
	// Steps far apart: "at once" means before the next one.
	srv := apptest.Start(t, func(c *config.Server) { c.Demo.TaskInterval = 4 * time.Second })
	p := openPage(t, srv.URL)
	p.click("connect")
	p.poll("state open", `document.getElementById("state").dataset.state === "open"`)
	p.click("start-task")
	p.poll("task 1 at 0%", `(`+taskState+`(1) || {}).pct === "0%"`)
	if err := chromedp.Do(p.ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("connect"))); err != nil {
		t.Fatal(err)
	}
	// No click: the page remembered it was connected.
	p.poll("state open after the reload", `document.getElementById("state").dataset.state === "open"`)
	p.poll("task 1 shown", `(`+taskState+`(1) || {}).pct === "0%"`)
	if ti := p.task(1); ti.State != "running" {
		t.Fatalf("task 1 after the reload: %+v", ti)
	}
	// The demo topic's retained PROGRESS came with the greeting.
	rows := browsertest.Eval[[]logRow](t, p.ctx, readLog)
	if !slices.ContainsFunc(rows, func(r logRow) bool { return r.Type == "PROGRESS" && r.Data == percent(0) }) {
		t.Fatalf("log after the reload: %+v, want the retained 0%%", rows)
	}
	// Disconnect is remembered too: the next reload stays disconnected.
	p.click("disconnect")
	if err := chromedp.Do(p.ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("connect"))); err != nil {
		t.Fatal(err)
	}
	if s := browsertest.Eval[string](t, p.ctx, `document.getElementById("state").dataset.state`); s != "closed" {
		t.Fatalf("state after a reload while disconnected: %q", s)
	}
	p.console.NoErrors(t)
}

// A server restart mid-task (the in-memory broker starts over): the page
// says in words what happened (never the reset's JSON), shows the task
// whose stream stopped without COMPLETE as interrupted, and a task started
// after the restart with the same number replaces the stale one.
func TestDemoPageAfterServerRestart(t *testing.T) {
	mutate := func(c *config.Server) {
		c.Demo.TaskInterval = 5 * time.Second
		c.Core.Retry = 200 * time.Millisecond
	}
	srv := apptest.Start(t, mutate)
	p := openPage(t, srv.URL)
	p.click("connect")
	p.poll("state open", `document.getElementById("state").dataset.state === "open"`)
	p.click("start-task")
	p.poll("task 1 at 0%", `(`+taskState+`(1) || {}).pct === "0%"`)

	srv.Restart(t)
	p.poll("the reset", `document.querySelector('#log tr[data-type="herald.reset"]') !== null`)
	rows := browsertest.Eval[[]logRow](t, p.ctx, readLog)
	reset := rows[slices.IndexFunc(rows, func(r logRow) bool { return r.Type == "herald.reset" })]
	if reset.Reason != "epoch-changed" || strings.ContainsAny(reset.Data, "{}") || !strings.Contains(reset.Data, "The server restarted") {
		t.Fatalf("reset row %+v: want the epoch-changed reset in words", reset)
	}
	p.waitTask(1, "interrupted")
	if ti := p.task(1); !strings.Contains(ti.Text, "interrupted") || ti.Pct != "interrupted" {
		t.Fatalf("task 1 after the restart: %+v", ti)
	}
	if s := browsertest.Eval[string](t, p.ctx, `document.getElementById("state").dataset.state`); s != "open" {
		t.Fatalf("state after the restart: %q", s)
	}

	// The new server numbers its tasks from 1 again: the page shows the
	// new task, not the stale one beside it.
	p.click("start-task")
	p.waitTask(1, "running")
	if n := browsertest.Eval[int](t, p.ctx, `document.querySelectorAll('#tasks .task[data-task="1"]').length`); n != 1 {
		t.Fatalf("%d rows for task 1", n)
	}
}

// A task ended by its INTERRUPTED event (what a server publishes for a task
// cut by a restart or a crash): the task and the log say so in words.
func TestDemoPageShowsInterruptedTask(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) { c.Demo.TaskInterval = time.Hour })
	p := openPage(t, srv.URL)
	p.click("connect")
	p.poll("state open", `document.getElementById("state").dataset.state === "open"`)
	p.click("start-task")
	p.waitTask(1, "running")
	const why = "Task interrupted: the server restarted."
	h := srv.App.Hub()
	for _, m := range []*pubsub.Message{
		{Topics: []string{demo.Topic}, Type: "INTERRUPTED", Data: why, Retain: true},
		{Topics: []string{demo.TaskTopic(1)}, Type: "INTERRUPTED", Data: why, Retain: true, Final: true},
	} {
		if _, err := h.Publish(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	p.waitTask(1, "interrupted")
	if ti := p.task(1); !strings.Contains(ti.Text, why) {
		t.Fatalf("task 1: %+v, want the note %q", ti, why)
	}
	p.poll("the INTERRUPTED row", fmt.Sprintf(`[...document.querySelectorAll('#log tr[data-type="INTERRUPTED"] .c-data')].some((td) => td.textContent === %q)`, why))
	p.poll("task stream closed", `(`+taskState+`(1) || {}).stream === "closed"`)
	p.console.NoErrors(t)
}

// A task that ends while the page is disconnected: on Connect the page
// follows it on from the last event it saw, so it gets the end it missed
// and shows the task done (not frozen, not interrupted).
func TestDemoPageCatchesUpAfterDisconnect(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) { c.Demo.TaskInterval = 300 * time.Millisecond })
	p := openPage(t, srv.URL)
	p.click("connect")
	p.poll("state open", `document.getElementById("state").dataset.state === "open"`)
	p.click("start-task")
	p.poll("task 1 under way", `(`+taskState+`(1) || {}).pct === "10%"`)
	p.click("disconnect")
	p.poll("task 1 paused", `(`+taskState+`(1) || {}).stream === "paused"`)
	// Wait, over HTTP, for the task's end.
	watch := open(t, fmt.Sprintf("%s/sse/subscribe?task=1", srv.URL), "")
	for ev := watch.Next(t); ev.Type != demo.TypeComplete; ev = watch.Next(t) {
	}
	if ti := p.task(1); ti.State != "running" {
		t.Fatalf("task 1 while disconnected: %+v", ti)
	}
	p.click("connect")
	p.waitTask(1, "done")
	p.console.NoErrors(t)
}
