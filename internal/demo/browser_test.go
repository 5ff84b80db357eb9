package demo_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/browsertest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/demo"
	"github.com/heraldpush/herald/sse"
)

var updateScreenshot = flag.Bool("update-screenshot", os.Getenv("HERALD_UPDATE_SCREENSHOT") != "",
	"write the demo page's screenshot to docs/img/demo.png (also: env HERALD_UPDATE_SCREENSHOT=1)")

// screenshotPath is docs/img/demo.png, from this package's directory.
var screenshotPath = filepath.Join("..", "..", "docs", "img", "demo.png")

// logRow is one row of the page's event log.
type logRow struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Data string `json:"data"`
}

const readLog = `[...document.querySelectorAll("#log tr")].map(r => ({type: r.dataset.type, id: r.dataset.id, data: r.querySelector(".c-data").textContent}))`

func poll(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("state").dataset.state`))
		rows, _ := chromedp.Run(ctx, chromedp.Evaluate[[]logRow](readLog))
		t.Fatalf("waiting for %s: %v (state %q, log %+v)", what, err, state, rows)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// The demo page in a real headless Chromium, driven as a user would: it
// connects, broadcasts, runs a task to the end; a second page opened
// mid-task shows the retained percentage at once.
func TestDemoPageInChromium(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) {
		c.Demo.TaskInterval = 50 * time.Millisecond
		// The task stream's reconnect after its final event (which gets
		// 204) comes after the retry delay.
		c.Core.Retry = 200 * time.Millisecond
	})
	ctx := browsertest.New(t, 90*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.ID("connect"))); err != nil {
		t.Fatal(err)
	}
	if s := eval[string](t, ctx, `document.getElementById("state").dataset.state`); s != "closed" {
		t.Fatalf("state before Connect: %q, want closed", s)
	}

	// Connect: the state follows the EventSource's readyState to open, and
	// the greeting arrives.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("connect"))); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "state open", `document.getElementById("state").dataset.state === "open" && document.getElementById("state-text").textContent === "open"`)
	poll(t, ctx, "CONNECTED", `document.querySelector('#log tr[data-type="CONNECTED"]') !== null`)
	if got := eval[string](t, ctx, `document.querySelector('#log tr[data-type="CONNECTED"] .c-data').textContent`); got != demo.ConnectedText {
		t.Fatalf("CONNECTED data %q", got)
	}

	// Send Broadcast with the text box.
	const message = "Hello SSE"
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("message"), message),
		chromedp.Click(chromedp.ID("broadcast")),
	); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "BROADCAST", `document.querySelector('#log tr[data-type="BROADCAST"]') !== null`)
	poll(t, ctx, "broadcast answer", fmt.Sprintf(`document.getElementById("broadcast-result").textContent === %q`, "Broadcast message: "+message))
	rows := eval[[]logRow](t, ctx, readLog)
	bc := rows[slices.IndexFunc(rows, func(r logRow) bool { return r.Type == "BROADCAST" })]
	if bc.Data != message || bc.ID == "" {
		t.Fatalf("BROADCAST row %+v, want data %q and an id", bc, message)
	}

	// Start Task: every PROGRESS step, then COMPLETE, each with its own id;
	// the task's progress bar reaches 100%.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("start-task"))); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "COMPLETE", `document.querySelector('#log tr[data-type="COMPLETE"]') !== null`)
	rows = eval[[]logRow](t, ctx, readLog)
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
	if got := eval[string](t, ctx, `document.getElementById("task-result").textContent`); got != "Task started!" {
		t.Fatalf("start-task answer on the page: %q", got)
	}
	poll(t, ctx, "bar at 100%", `(() => {
		const bar = document.querySelector('#tasks .task .bar');
		return bar && bar.getAttribute("aria-valuenow") === "100" && bar.querySelector(".fill").style.width === "100%" &&
			bar.closest(".task").classList.contains("done");
	})()`)
	// The task stream ended with its final event; the EventSource's
	// reconnect got 204 and it is closed for good.
	poll(t, ctx, "task stream closed", `document.querySelector('#tasks .task').dataset.stream === "closed"`)
	if s := eval[string](t, ctx, `document.getElementById("state").dataset.state`); s != "open" {
		t.Fatalf("demo stream state %q after the task, want open", s)
	}

	if *updateScreenshot {
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`)); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(screenshotPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(screenshotPath, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", screenshotPath, len(png))
	}

	// Data is shown as text, never as HTML.
	const markup = "<b>not bold</b>"
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("message"), markup),
		chromedp.Click(chromedp.ID("broadcast")),
	); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "markup broadcast", fmt.Sprintf(`[...document.querySelectorAll('#log tr[data-type="BROADCAST"] .c-data')].some(td => td.textContent === %q)`, markup))
	if n := eval[int](t, ctx, `document.querySelectorAll("#log b, #broadcast-result b").length`); n != 0 {
		t.Fatal("broadcast data was rendered as HTML")
	}

	// Disconnect closes the stream.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("disconnect"))); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "state closed", `document.getElementById("state").dataset.state === "closed" && document.getElementById("connect").disabled === false`)
}

func TestDemoPageOpenedMidTaskShowsRetainedProgress(t *testing.T) {
	// Steps 1.5s apart, so that the page connects between two steps.
	srv := apptest.Start(t, func(c *config.Server) { c.Demo.TaskInterval = 1500 * time.Millisecond })
	ctx := browsertest.New(t, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.ID("connect"))); err != nil {
		t.Fatal(err)
	}
	n := startTask(t, srv.URL)
	// Watch the task over HTTP until it has reached 10%, then open the
	// page's stream.
	watch := open(t, fmt.Sprintf("%s/sse/subscribe?task=%d", srv.URL, n), "")
	var step sse.Event
	for step.Data != percent(10) {
		step = watch.next(t)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("connect"))); err != nil {
		t.Fatal(err)
	}
	// The first PROGRESS the page shows is the retained 10% — the step
	// published before it connected, with that step's id — and the task's
	// bar shows 10%.
	poll(t, ctx, "a PROGRESS row", `document.querySelector('#log tr[data-type="PROGRESS"]') !== null`)
	rows := eval[[]logRow](t, ctx, readLog)
	first := rows[slices.IndexFunc(rows, func(r logRow) bool { return r.Type == "PROGRESS" })]
	if first.Data != percent(10) || first.ID != step.ID {
		t.Fatalf("first PROGRESS on the page: %+v, want the retained %q with id %s", first, percent(10), step.ID)
	}
	sel := `#tasks .task[data-task="` + strconv.Itoa(n) + `"] .bar`
	poll(t, ctx, "task bar", fmt.Sprintf(`(() => { const b = document.querySelector(%q); return b && Number(b.getAttribute("aria-valuenow")) >= 10; })()`, sel))
	// And it goes on from there with the live steps.
	poll(t, ctx, "the next step", fmt.Sprintf(`[...document.querySelectorAll('#log tr[data-type="PROGRESS"] .c-data')].some(td => td.textContent === %q)`, percent(20)))
}
