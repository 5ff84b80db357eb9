package chat_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/llm"
	"github.com/heraldpush/herald/internal/llm/openaitest"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
)

// A client that drops three times mid-answer and resumes each time ends
// with exactly the upstream's text, and the upstream was called once.
func TestResumeAfterDropsCallsTheModelOnce(t *testing.T) {
	usage := &llm.Usage{PromptTokens: 12, CompletionTokens: 300, TotalTokens: 312}
	up := openaitest.New(t, openaitest.Script{Tokens: tokens(300), Delay: 2 * time.Millisecond, Usage: usage})
	srv := start(t, up, nil)
	id := ask(t, srv, "tell me a long story")

	var got []string
	var ids []string
	lastID := ""
	for drop := range 3 {
		s := follow(t, srv.URL, id, lastID, 40)
		if s.status != http.StatusOK || len(s.tokens) != 40 || s.done != nil {
			t.Fatalf("watch %d: status %d, %d tokens, done %v: want a drop after 40 tokens mid-answer", drop, s.status, len(s.tokens), s.done != nil)
		}
		got = append(got, s.tokens...)
		ids = append(ids, s.ids...)
		lastID = s.lastID
	}
	s := follow(t, srv.URL, id, lastID, 0)
	if s.done == nil || !s.ended || s.resets != 0 {
		t.Fatalf("last watch: done %v, ended %v, resets %d", s.done, s.ended, s.resets)
	}
	got = append(got, s.tokens...)
	ids = append(ids, s.ids...)

	want := up.Script().Text()
	if text := strings.Join(got, ""); text != want {
		t.Fatalf("resumed text differs from the upstream's:\n got %q\nwant %q", text, want)
	}
	if s.done.Text != want || s.done.Tokens != 300 || s.done.FinishReason != "stop" || s.done.Stopped || s.done.Model != "fake-model" {
		t.Fatalf("done = %+v", s.done)
	}
	if s.done.Usage == nil || *s.done.Usage != *usage {
		t.Fatalf("done usage = %+v, want %+v", s.done.Usage, usage)
	}
	if up.Calls() != 1 {
		t.Fatalf("the upstream was called %d times, want once", up.Calls())
	}
	// Every event once, in order.
	prev := uint64(0)
	for _, id := range ids {
		p, err := pubsub.ParsePosition(id)
		if err != nil || p.Offset <= prev {
			t.Fatalf("event ids not strictly increasing across reconnects: %q after offset %d", id, prev)
		}
		prev = p.Offset
	}
	// Reconnecting at the end: 204, so that EventSource stops.
	if s := follow(t, srv.URL, id, s.finalID, 0); s.status != http.StatusNoContent {
		t.Fatalf("reconnect after done: %d, want 204", s.status)
	}
}

func TestTokensAreExactText(t *testing.T) {
	// CR and CRLF become LF (SSE data carries LF only), also when split
	// across tokens; everything else arrives byte for byte.
	toks := []string{"a\r\nb", "c\r", "\nd", " \r", "e", "  ", "\n\n", "data: x\nid: 9\n\n", " end "}
	up := openaitest.New(t, openaitest.Script{Tokens: toks})
	srv := start(t, up, nil)
	id := ask(t, srv, "q")
	s := finish(t, srv.URL, id)
	want := "a\nbc\nd \ne  \n\ndata: x\nid: 9\n\n end "
	if s.done.Text != want {
		t.Fatalf("done text = %q, want %q", s.done.Text, want)
	}
	// A new watcher of a finished answer gets one event: replay from the
	// start to check the tokens themselves.
	r := follow(t, srv.URL, id, startOf(t, srv.URL, id), 0)
	if r.text() != want {
		t.Fatalf("tokens = %q, want %q", r.text(), want)
	}
}

// startOf returns the position just before stream id's first event.
func startOf(t testing.TB, base, id string) string {
	t.Helper()
	s := follow(t, base, id, "", 0)
	p, err := pubsub.ParsePosition(s.finalID)
	if err != nil {
		t.Fatal(err)
	}
	p.Offset = 0
	return p.String()
}

func TestSeveralWatchers(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: tokens(120), Delay: 3 * time.Millisecond})
	srv := start(t, up, nil)
	id := ask(t, srv, "q")
	want := up.Script().Text()

	var wg sync.WaitGroup
	results := make([]stream, 4)
	for i := range 3 {
		wg.Go(func() { results[i] = follow(t, srv.URL, id, "", 0) })
	}
	// One joins mid-answer, without Last-Event-ID: it gets the answer from
	// its first token.
	mid := follow(t, srv.URL, id, "", 30)
	wg.Go(func() { results[3] = follow(t, srv.URL, id, "", 0) })
	wg.Wait()
	if mid.done != nil {
		t.Fatal("the answer ended before the mid-answer watcher joined; slow machine?")
	}
	for i, r := range results {
		if r.done == nil || r.text() != want || r.done.Text != want {
			t.Fatalf("watcher %d: done %v, text %q..., want the whole answer as tokens", i, r.done != nil, r.text()[:min(30, len(r.text()))])
		}
	}
	if up.Calls() != 1 {
		t.Fatalf("%d upstream calls, want 1", up.Calls())
	}
}

func TestLateJoinerGetsOneDoneEvent(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: tokens(200)})
	srv := start(t, up, nil)
	id := ask(t, srv, "q")
	finish(t, srv.URL, id)

	s := follow(t, srv.URL, id, "", 0)
	if len(s.types) != 1 || s.types[0] != "done" || !s.ended {
		t.Fatalf("late joiner got %d events %v, ended %v; want one done event, then the end", len(s.types), s.types, s.ended)
	}
	if s.done.Text != up.Script().Text() || s.done.Tokens != 200 {
		t.Fatalf("done = %d tokens, text %q...", s.done.Tokens, s.done.Text[:20])
	}
	// EventSource reconnects with the done's id: 204 ends it, with the
	// header or the query parameter.
	if r := follow(t, srv.URL, id, s.lastID, 0); r.status != http.StatusNoContent {
		t.Fatalf("reconnect at done: %d, want 204", r.status)
	}
	resp, err := http.Get(srv.URL + "/chat/stream/" + id + "?lastEventID=" + s.finalID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("reconnect with ?lastEventID: %d, want 204", resp.StatusCode)
	}
	if up.Calls() != 1 {
		t.Fatalf("%d upstream calls", up.Calls())
	}
}

func TestDisconnectDoesNotStopTheGeneration(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: tokens(60), Delay: 3 * time.Millisecond})
	srv := start(t, up, nil)
	id := ask(t, srv, "q")
	if s := follow(t, srv.URL, id, "", 5); len(s.tokens) != 5 {
		t.Fatal("no tokens")
	}
	// Everyone is gone: the answer still completes.
	testkit.WaitFor(t, "upstream finished", func() bool { return up.Completed() == 1 })
	s := follow(t, srv.URL, id, "", 0)
	if s.done == nil || s.done.Stopped || s.done.Text != up.Script().Text() {
		t.Fatalf("done = %+v", s.done)
	}
	if up.Aborted() != 0 {
		t.Fatal("a client's disconnect aborted the upstream request")
	}
}

func TestCancelStopsTheUpstreamAndKeepsThePartialAnswer(t *testing.T) {
	toks := tokens(50)
	up := openaitest.New(t, openaitest.Script{Tokens: toks, Fail: openaitest.Hang, FailAfter: 10})
	srv := start(t, up, nil)
	id := ask(t, srv, "q")
	s := follow(t, srv.URL, id, "", 10)
	if len(s.tokens) != 10 {
		t.Fatal("no tokens")
	}
	var res struct {
		ID      string `json:"id"`
		Stopped bool   `json:"stopped"`
	}
	if code := post(t, srv.URL+"/chat/stream/"+id+"/cancel", nil, &res); code != http.StatusOK || !res.Stopped || res.ID != id {
		t.Fatalf("cancel: %d %+v", code, res)
	}
	testkit.WaitFor(t, "upstream request cancelled", func() bool { return up.Aborted() == 1 })
	r := follow(t, srv.URL, id, s.lastID, 0)
	want := strings.Join(toks[:10], "")
	if r.done == nil || !r.done.Stopped || r.done.FinishReason != "stopped" || r.done.Text != want || r.done.Tokens != 10 {
		t.Fatalf("after cancel: done %+v, want stopped with the 10 tokens", r.done)
	}
	if len(r.tokens) != 0 {
		t.Fatalf("%d tokens after the cancel", len(r.tokens))
	}
	var e struct{ Error string }
	if code := post(t, srv.URL+"/chat/stream/"+id+"/cancel", nil, &e); code != http.StatusConflict || e.Error == "" {
		t.Fatalf("second cancel: %d %q, want 409", code, e.Error)
	}
	if code := post(t, srv.URL+"/chat/stream/aaaaaaaaaaaaaaaaaaaaaaaaaa/cancel", nil, &e); code != http.StatusNotFound {
		t.Fatalf("cancel of an unknown stream: %d, want 404", code)
	}
	if up.Calls() != 1 {
		t.Fatalf("%d upstream calls", up.Calls())
	}
}

// A small per-topic history: tokens are grouped so that the whole answer
// stays resumable, without a herald.reset.
func TestLongAnswerFitsTheHistory(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: tokens(150), Delay: time.Millisecond})
	srv := start(t, up, func(c *config.Server) {
		c.History.MaxEvents = 20
		c.Chat.MaxTokens = 150
	})
	id := ask(t, srv, "q")
	var got []string
	lastID := ""
	for range 3 {
		s := follow(t, srv.URL, id, lastID, 2)
		got = append(got, s.tokens...)
		lastID = s.lastID
		if s.resets != 0 {
			t.Fatal("herald.reset: history did not reach back")
		}
	}
	s := follow(t, srv.URL, id, lastID, 0)
	got = append(got, s.tokens...)
	if s.resets != 0 || s.done == nil || s.done.FinishReason != "stop" {
		t.Fatalf("resets %d, done %v", s.resets, s.done != nil)
	}
	if text := strings.Join(got, ""); text != up.Script().Text() {
		t.Fatalf("text after resuming differs:\n got %q\nwant %q", text, up.Script().Text())
	}
	// From the start: every token event still in history.
	all := follow(t, srv.URL, id, startOf(t, srv.URL, id), 0)
	if all.resets != 0 || all.text() != up.Script().Text() || len(all.types) > 20 {
		t.Fatalf("replay from the start: %d events, %d resets, text ok %v", len(all.types), all.resets, all.text() == up.Script().Text())
	}
}

func TestForgottenAfterRetention(t *testing.T) {
	up := openaitest.New(t, openaitest.Script{Tokens: tokens(5)})
	srv := start(t, up, func(c *config.Server) { c.Chat.Retention = 100 * time.Millisecond })
	id := ask(t, srv, "q")
	s := finish(t, srv.URL, id)
	testkit.WaitFor(t, "stream forgotten", func() bool { return follow(t, srv.URL, id, "", 0).status == http.StatusNotFound })
	if r := follow(t, srv.URL, id, s.finalID, 0); r.status != http.StatusNotFound {
		t.Fatalf("resume of a forgotten stream: %d, want 404", r.status)
	}
}
