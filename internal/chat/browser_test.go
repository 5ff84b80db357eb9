package chat_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/browsertest"
	"github.com/heraldpush/herald/internal/chat"
	"github.com/heraldpush/herald/internal/llm/openaitest"
	"github.com/heraldpush/herald/pubsub"
)

// chatState is the page's sessionStorage: the conversation and the answer
// streaming now, as the page keeps them (raw text, not rendered).
type chatState struct {
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
		Note    string `json:"note"`
		Kind    string `json:"kind"`
		Answer  string `json:"answer"`
	} `json:"messages"`
	Active *struct {
		ID   string `json:"id"`
		Text string `json:"text"`
	} `json:"active"`
}

const readState = `JSON.parse(sessionStorage.getItem("herald.chat.v1") || "{}")`

func poll(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	browsertest.WaitFor(t, ctx, what, expr, 40*time.Second)
}

// activeAtLeast waits until the streaming answer has n characters and
// returns them.
func activeAtLeast(t *testing.T, ctx context.Context, n int) string {
	t.Helper()
	poll(t, ctx, fmt.Sprintf("%d characters of the answer", n), fmt.Sprintf(`((s) => s.active && s.active.text.length >= %d)(%s)`, n, readState))
	return browsertest.Eval[chatState](t, ctx, readState).Active.Text
}

func askInPage(t *testing.T, ctx context.Context, url, question string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(url+"/chat"),
		chromedp.WaitVisible(chromedp.ID("question")),
		chromedp.SendKeys(chromedp.ID("question"), question),
		chromedp.Click(chromedp.ID("send")),
	); err != nil {
		t.Fatal(err)
	}
}

// In a real Chromium: ask, reload the page mid-answer, then lose the
// connection too; the answer completes with nothing missing or repeated,
// and the model was asked once.
func TestChatPageSurvivesReloadAndDrop(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: tokens(200), Delay: 20 * time.Millisecond})
	srv := start(t, up, nil)
	want := up.Script().Text()
	ctx := browsertest.New(t, 90*time.Second)
	console := browsertest.WatchConsole(t, ctx)
	askInPage(t, ctx, srv.URL, "Tell me a long story")
	before := activeAtLeast(t, ctx, 40)
	if len(before) >= len(want) {
		t.Fatal("the answer finished before the reload")
	}
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	// The reloaded page shows the text it had and carries on from there.
	activeAtLeast(t, ctx, len(before)+20)
	id := browsertest.Eval[chatState](t, ctx, readState).Active.ID
	// A network drop: the server cuts the stream; EventSource reconnects
	// by itself with Last-Event-ID.
	// (The stream of the page before the reload may still count, until
	// the server notices that its connection is gone.)
	if n := srv.App.Hub().Disconnect("chat/" + id); n < 1 {
		t.Fatal("no stream to cut: the reloaded page does not follow the answer")
	}
	poll(t, ctx, "the end of the answer", `window.heraldChat.finished >= 1`)

	type result struct {
		Streamed   string `json:"streamed"`
		Mismatches int    `json:"mismatches"`
		Resumes    int    `json:"resumes"`
		Resets     int    `json:"resets"`
		State      string `json:"state"`
		Bubbles    int    `json:"bubbles"`
	}
	r := browsertest.Eval[result](t, ctx, `(() => {
		const c = window.heraldChat;
		return { streamed: c.lastStreamed, mismatches: c.mismatches, resumes: c.resumes, resets: c.resets,
			state: document.body.dataset.state, bubbles: document.querySelectorAll(".msg.assistant").length };
	})()`)
	if r.Streamed != want {
		t.Fatalf("the streamed text differs from the upstream's:\n got %q\nwant %q", r.Streamed, want)
	}
	st := browsertest.Eval[chatState](t, ctx, readState)
	last := st.Messages[len(st.Messages)-1]
	if last.Content != want || last.Answer != id || r.Mismatches != 0 || r.Resets != 0 || r.Bubbles != 1 || r.State != "idle" {
		t.Fatalf("page after the answer: %+v, last message %+v", r, last)
	}
	if r.Resumes < 1 {
		t.Fatal("the reloaded page did not resume with lastEventID")
	}
	if up.Calls() != 1 {
		t.Fatalf("the upstream was called %d times, want once", up.Calls())
	}
	console.NoErrors(t)
}

// markdownAnswer is an answer with every construct the page renders.
var markdownAnswer = []string{
	"# A title\n\n", "Some **bold**, *em* and `code`", " with a [link](https://example.com/docs).\n\n",
	"- one\n", "- two\n", "  - nested\n", "\n", "1. first\n", "2. second\n\n",
	"```go\n", "fmt.Println(\"<b>hi</b>\")\n", "```\n\n", "> quoted\n\n", "Raw <b>html</b> stays text.",
}

// The page as a reader meets it, in every layout (1280 and 390 px, light
// and dark): the answer rendered from Markdown, announced once when it is
// finished, the question labelled, the title bar (with New chat) in view
// at the bottom of a long conversation, the subtitle short; nothing to fix
// and no console error.
func TestChatPageRendersAndFits(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: markdownAnswer, Delay: 5 * time.Millisecond})
	srv := start(t, up, nil)
	ctx := browsertest.New(t, 90*time.Second)
	console := browsertest.WatchConsole(t, ctx)
	for i := range 3 {
		if i == 0 {
			askInPage(t, ctx, srv.URL, "Show me Markdown")
		} else {
			if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("question"), "Again, please"), chromedp.Click(chromedp.ID("send"))); err != nil {
				t.Fatal(err)
			}
		}
		poll(t, ctx, "answer "+strconv.Itoa(i+1), fmt.Sprintf(`window.heraldChat.finished === %d`, i+1))
	}

	type rendered struct {
		H3, Strong, Em, Code, Pre, Lis, Nested, Ol, Quote int
		Link, PreText, Raw, LiveLog, Announce, Label      string
	}
	r := browsertest.Eval[rendered](t, ctx, `(() => {
		const m = [...document.querySelectorAll(".msg.assistant .text")].pop();
		const n = (sel) => m.querySelectorAll(sel).length;
		const a = m.querySelector("a");
		return { h3: n("h3"), strong: n("strong"), em: n("em"), code: n("p code"), pre: n("pre code[data-lang=go]"),
			lis: n("ul > li"), nested: n("ul li ul li"), ol: n("ol > li"), quote: n("blockquote"),
			link: a ? a.href + " " + a.rel + " " + a.target : "", preText: m.querySelector("pre").textContent,
			raw: [...m.querySelectorAll("b")].length + " " + m.textContent.includes("Raw <b>html</b> stays text."),
			liveLog: String(document.getElementById("log").getAttribute("aria-live")),
			announce: document.getElementById("announce").textContent,
			label: document.querySelector('label[for="question"]').textContent };
	})()`)
	want := rendered{H3: 1, Strong: 1, Em: 1, Code: 1, Pre: 1, Lis: 3, Nested: 1, Ol: 2, Quote: 1,
		Link: "https://example.com/docs noopener noreferrer nofollow _blank", PreText: `fmt.Println("<b>hi</b>")`,
		Raw: "0 true", LiveLog: "null", Label: "Your question"}
	got := r
	got.Announce = ""
	if got != want {
		t.Errorf("rendered answer:\n got %+v\nwant %+v", got, want)
	}
	if !strings.HasPrefix(r.Announce, "Answer: A titleSome bold") || strings.Contains(r.Announce, "**") {
		t.Errorf("announced %q: want the whole answer, as text", r.Announce)
	}

	browsertest.CheckLayouts(t, ctx, func(l browsertest.Layout) {
		// At the bottom of the conversation the title bar and New chat are
		// still in view.
		type geometry struct {
			BarTop, NewTop, NewBottom, Scrolled, SubLines float64
		}
		g := browsertest.Eval[geometry](t, ctx, `(() => {
			window.scrollTo(0, document.body.scrollHeight);
			const bar = document.querySelector(".chat-bar").getBoundingClientRect();
			const nb = document.getElementById("new").getBoundingClientRect();
			const sub = document.querySelector(".chat-title .sub");
			return { barTop: bar.top, newTop: nb.top, newBottom: nb.bottom, scrolled: window.scrollY,
				subLines: sub.getBoundingClientRect().height / parseFloat(getComputedStyle(sub).lineHeight) };
		})()`)
		if g.Scrolled == 0 || g.NewTop < 0 || g.NewBottom > 200 {
			t.Errorf("%s: after scrolling %.0f px, New chat is at %.0f–%.0f px: the title bar scrolled away", l.Name, g.Scrolled, g.NewTop, g.NewBottom)
		}
		if hidden := browsertest.Eval[bool](t, ctx, `getComputedStyle(document.getElementById("stop")).display === "none"`); !hidden {
			t.Errorf("%s: Stop is shown with no answer streaming", l.Name)
		}
		if g.SubLines > 3.2 {
			t.Errorf("%s: the subtitle takes %.1f lines", l.Name, g.SubLines)
		}
		switch l.Name {
		case "desktop-light":
			browsertest.ScreenshotViewport(t, ctx, filepath.Join("..", "..", "docs", "img", "chat.png"))
		case "phone-dark":
			browsertest.ScreenshotViewport(t, ctx, filepath.Join("..", "..", "docs", "img", "chat-phone-dark.png"))
		}
	})
	console.NoErrors(t)
}

// Every answer has a link that opens it on its own: in another tab (a
// fresh sessionStorage, as on another device) the answer still streaming
// shows and completes there too, and the model is asked once.
func TestChatAnswerLinkOpensElsewhere(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: tokens(150), Delay: 20 * time.Millisecond})
	srv := start(t, up, nil)
	want := up.Script().Text()
	ctx := browsertest.New(t, 90*time.Second)
	askInPage(t, ctx, srv.URL, "Tell me a long story")
	activeAtLeast(t, ctx, 20)
	link := browsertest.Eval[string](t, ctx, `document.querySelector("#answer .share").href`)
	id := browsertest.Eval[chatState](t, ctx, readState).Active.ID
	if link != srv.URL+"/chat?answer="+id {
		t.Fatalf("link %q, want /chat?answer=%s", link, id)
	}

	other, cancel := chromedp.NewContext(ctx) // a new tab: its own sessionStorage
	defer cancel()
	if err := chromedp.Do(other, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	poll(t, other, "the answer in the other tab", `window.heraldChat && window.heraldChat.finished === 1`)
	st := browsertest.Eval[chatState](t, other, readState)
	if len(st.Messages) != 1 || st.Messages[0].Content != want || st.Messages[0].Answer != id || !strings.Contains(st.Messages[0].Note, "Opened from a link") {
		t.Fatalf("the other tab's conversation: %+v", st.Messages)
	}
	if u := browsertest.Eval[string](t, other, `location.pathname + location.search`); u != "/chat" {
		t.Errorf("address after opening the link: %q, want /chat (a reload resumes from sessionStorage)", u)
	}
	poll(t, ctx, "the answer in the first tab", `window.heraldChat.finished === 1`)
	if up.Calls() != 1 {
		t.Fatalf("the upstream was called %d times, want once", up.Calls())
	}

	// A link to an answer that does not exist says so in words.
	if err := chromedp.Do(other, chromedp.Navigate(srv.URL+"/chat?answer=nosuchanswer0000000000000000")); err != nil {
		t.Fatal(err)
	}
	poll(t, other, "the missing answer", `document.getElementById("status").textContent.startsWith("This answer is not available")`)
}

// An answer that ends with the interrupted error event (what a server
// publishes for a generation cut by a shutdown or a crash) is shown as
// interrupted, in words, with the text that was generated.
func TestChatPageShowsInterruptedAnswer(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: tokens(1000), Delay: 50 * time.Millisecond})
	srv := start(t, up, nil)
	ctx := browsertest.New(t, 90*time.Second)
	askInPage(t, ctx, srv.URL, "Tell me a long story")
	activeAtLeast(t, ctx, 10)
	id := browsertest.Eval[chatState](t, ctx, readState).Active.ID
	data, _ := json.Marshal(map[string]any{"message": "generation interrupted: the server restarted", "text": "partial text", "tokens": 2, "model": "fake-model", "code": "interrupted"})
	if _, err := srv.App.Hub().Publish(context.Background(), &pubsub.Message{Topics: []string{chat.TopicPrefix + id}, Type: "error", Data: string(data), Retain: true, Final: true}); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, "the interrupted answer", `window.heraldChat.finished === 1`)
	type shown struct {
		Class, Note, Status, Text, Announce string
	}
	s := browsertest.Eval[shown](t, ctx, `(() => { const m = [...document.querySelectorAll(".msg.assistant")].pop();
		return { class: m.className, note: m.querySelector(".note").textContent, status: document.getElementById("status").textContent,
			text: m.querySelector(".text").textContent, announce: document.getElementById("announce").textContent }; })()`)
	if !strings.Contains(s.Class, "interrupted") || !strings.HasPrefix(s.Note, "Interrupted: the server stopped") ||
		s.Status != "The answer was interrupted." || s.Text != "partial text" || !strings.Contains(s.Announce, "Interrupted") {
		t.Fatalf("interrupted answer shown as %+v", s)
	}
}
