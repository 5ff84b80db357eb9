package chat_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/browsertest"
	"github.com/heraldpush/herald/internal/llm/openaitest"
)

// In a real Chromium: ask, reload the page mid-answer, then lose the
// connection too; the answer completes with nothing missing or repeated,
// and the model was asked once.
func TestChatPageSurvivesReloadAndDrop(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: tokens(200), Delay: 20 * time.Millisecond})
	srv := start(t, up, nil)
	want := up.Script().Text()
	ctx := browsertest.New(t, 90*time.Second)
	poll := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Poll[string](expr, chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(40*time.Second)))
		if err != nil {
			t.Fatalf("waiting for %s: %v", expr, err)
		}
		return v
	}
	answerAtLeast := func(n int) string {
		return poll(`(() => { const e = document.querySelector("#answer .text"); return e && e.textContent.length >= ` + strconv.Itoa(n) + ` ? e.textContent : ""; })()`)
	}

	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/chat"),
		chromedp.WaitVisible(chromedp.ID("question")),
		chromedp.SendKeys(chromedp.ID("question"), "Tell me a long story"),
		chromedp.Click(chromedp.ID("send")),
	); err != nil {
		t.Fatal(err)
	}
	before := answerAtLeast(40)
	if len(before) >= len(want) {
		t.Fatal("the answer finished before the reload")
	}
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	// The reloaded page shows the text it had and carries on from there.
	answerAtLeast(len(before) + 20)
	id, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.parse(sessionStorage.getItem("herald.chat.v1")).active.id`))
	if err != nil {
		t.Fatalf("no active answer after the reload: %v", err)
	}
	// A network drop: the server cuts the stream; EventSource reconnects
	// by itself with Last-Event-ID.
	// (The stream of the page before the reload may still count, until
	// the server notices that its connection is gone.)
	if n := srv.App.Hub().Disconnect("chat/" + id); n < 1 {
		t.Fatal("no stream to cut: the reloaded page does not follow the answer")
	}
	poll(`window.heraldChat.finished >= 1 ? "yes" : ""`)

	type result struct {
		Final      string `json:"final"`
		Streamed   string `json:"streamed"`
		Mismatches int    `json:"mismatches"`
		Resumes    int    `json:"resumes"`
		Resets     int    `json:"resets"`
		State      string `json:"state"`
		Bubbles    int    `json:"bubbles"`
	}
	r, err := chromedp.Run(ctx, chromedp.Evaluate[result](`(() => {
		const a = document.querySelectorAll(".msg.assistant .text");
		const c = window.heraldChat;
		return { final: a[a.length - 1].textContent, streamed: c.lastStreamed, mismatches: c.mismatches,
			resumes: c.resumes, resets: c.resets, state: document.body.dataset.state, bubbles: a.length };
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Streamed != want {
		t.Fatalf("the streamed text differs from the upstream's:\n got %q\nwant %q", r.Streamed, want)
	}
	if r.Final != want || r.Mismatches != 0 || r.Resets != 0 || r.Bubbles != 1 || r.State != "idle" {
		t.Fatalf("page after the answer: %+v", r)
	}
	if r.Resumes < 1 {
		t.Fatal("the reloaded page did not resume with lastEventID")
	}
	if up.Calls() != 1 {
		t.Fatalf("the upstream was called %d times, want once", up.Calls())
	}
}
