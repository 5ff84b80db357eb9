package chat_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/chat"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/llm/openaitest"
)

// With the durable store, answers survive a restart: a finished one is
// served whole, a resume continues exactly, and an answer interrupted by the
// shutdown ends with an error event that keeps its partial text.
func TestAnswersSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	durable := func(c *config.Server) { c.Broker.DataDir = dir }

	up := openaitest.New(t, openaitest.Script{Tokens: tokens(60)})
	stuck := openaitest.New(t, openaitest.Script{Tokens: tokens(60), Fail: openaitest.Hang, FailAfter: 4})
	srv := start(t, up, durable)
	finished := ask(t, srv, "q")
	full := finish(t, srv.URL, finished)
	mid := follow(t, srv.URL, finished, startOf(t, srv.URL, finished), 20)
	srv.Stop()

	srv2 := start(t, stuck, durable)
	interrupted := ask(t, srv2, "q")
	follow(t, srv2.URL, interrupted, "", 4)
	srv2.Stop()

	srv3 := start(t, up, durable)
	s := follow(t, srv3.URL, finished, "", 0)
	if len(s.types) != 1 || s.done == nil || s.done.Text != up.Script().Text() {
		t.Fatalf("after a restart: %d events %v, want one done with the whole answer", len(s.types), s.types)
	}
	if r := follow(t, srv3.URL, finished, full.finalID, 0); r.status != http.StatusNoContent {
		t.Fatalf("reconnect at done after a restart: %d, want 204", r.status)
	}
	r := follow(t, srv3.URL, finished, mid.lastID, 0)
	if r.resets != 0 || mid.text()+r.text() != up.Script().Text() {
		t.Fatalf("resume after a restart: %d resets, text ok %v", r.resets, mid.text()+r.text() == up.Script().Text())
	}
	i := follow(t, srv3.URL, interrupted, "", 0)
	if i.fail == nil || !strings.Contains(i.fail.Message, "shutting down") || i.fail.Code != chat.CodeInterrupted || i.fail.Text != strings.Join(tokens(4), "") {
		t.Fatalf("interrupted answer after a restart: %+v %+v", i.done, i.fail)
	}
	var e struct{ Error string }
	if code := post(t, srv3.URL+"/chat/stream/"+interrupted+"/cancel", nil, &e); code != http.StatusConflict {
		t.Fatalf("cancel of a finished stream from before the restart: %d %q, want 409", code, e.Error)
	}
	if up.Calls() != 1 || stuck.Calls() != 1 {
		t.Fatalf("upstream calls %d and %d, want 1 each", up.Calls(), stuck.Calls())
	}
}
