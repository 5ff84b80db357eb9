package aisdk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldpush/herald/internal/aisdk"
	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/llm/openaitest"
	"github.com/heraldpush/herald/sse"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs Herald with its chat answered by up.
func start(t testing.TB, up *openaitest.Server, mutate func(*config.Server)) *apptest.Server {
	t.Helper()
	return apptest.Start(t, func(c *config.Server) {
		c.Chat.LLMBaseURL = up.BaseURL()
		c.Chat.LLMModel = "fake-model"
		c.Chat.LLMAPIKey = "sk-test"
		if mutate != nil {
			mutate(c)
		}
	})
}

// words returns n tokens, some of which an SSE or JSON relay could get
// wrong.
func words(n int) []string {
	tricky := []string{"Hello", ",", " world", "!\n\n", "data: x\n\n", " \"quoted\"", " üñí©ødé 😀", "\ttab", " </script>", " \\ back"}
	out := make([]string, n)
	for i := range out {
		if i < len(tricky) {
			out[i] = tricky[i]
		} else {
			out[i] = fmt.Sprintf(" w%d", i)
		}
	}
	return out
}

// uiBody is a DefaultChatTransport body for chat id asking question.
func uiBody(id, question string) string {
	b, _ := json.Marshal(map[string]any{
		"id":       id,
		"messages": []any{map[string]any{"id": "m1", "role": "user", "parts": []any{map[string]any{"type": "text", "text": question}}}},
		"trigger":  "submit-message",
	})
	return string(b)
}

// reply is what a client read from a UI message stream.
type reply struct {
	status    int
	header    http.Header
	body      string // the body of a non-200 answer
	chunks    []map[string]any
	text      string // the text-delta chunks joined
	messageID string // of the start chunk
	done      bool   // saw data: [DONE]
	ended     bool   // the server ended the body cleanly
	err       error  // the read error, when the body ended otherwise
}

// types returns the chunks' types, in order.
func (r *reply) types() []string {
	out := make([]string, len(r.chunks))
	for i, c := range r.chunks {
		out[i], _ = c["type"].(string)
	}
	return out
}

// last returns the last chunk of type typ, or nil.
func (r *reply) last(typ string) map[string]any {
	for i := len(r.chunks) - 1; i >= 0; i-- {
		if r.chunks[i]["type"] == typ {
			return r.chunks[i]
		}
	}
	return nil
}

// send makes a request and reads its UI message stream until it ends, or
// until it has read maxDeltas text-delta chunks (0: no limit) and then
// drops the connection. When onDelta is set, it is called after each delta
// with the number of deltas read so far and the message id.
func send(t testing.TB, method, url, body string, maxDeltas int, onDelta func(n int, messageID string)) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(ctx, method, url, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		r.body = string(b)
		return r
	}
	var text strings.Builder
	dec := sse.NewDecoder(resp.Body)
	deltas := 0
	for {
		ev, err := dec.Next()
		if errors.Is(err, io.EOF) {
			r.ended = true
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("%s %s: the stream did not end within 30s", method, url)
			}
			r.err = err
			break
		}
		if ev.Type != "message" || ev.HasID {
			t.Fatalf("event with type %q, id %q: the UI message stream has neither", ev.Type, ev.ID)
		}
		if ev.Data == "[DONE]" {
			r.done = true
			continue
		}
		if r.done {
			t.Fatalf("chunk after [DONE]: %s", ev.Data)
		}
		var c map[string]any
		if err := json.Unmarshal([]byte(ev.Data), &c); err != nil {
			t.Fatalf("chunk %q is not JSON: %v", ev.Data, err)
		}
		r.chunks = append(r.chunks, c)
		switch c["type"] {
		case "start":
			r.messageID, _ = c["messageId"].(string)
		case "text-delta":
			text.WriteString(c["delta"].(string))
			deltas++
			r.text = text.String()
			if onDelta != nil {
				onDelta(deltas, r.messageID)
			}
			if maxDeltas > 0 && deltas == maxDeltas {
				return r // drop the connection mid-answer
			}
		}
	}
	r.text = text.String()
	return r
}

// post sends a JSON body and decodes a JSON answer into out.
func post(t testing.TB, url, body string, out any) int {
	t.Helper()
	var rd io.Reader = http.NoBody
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(http.MethodPost, url, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.NewDecoder(bytes.NewReader(b)).Decode(out); err != nil {
			t.Fatalf("POST %s: %d, undecodable body %q: %v", url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// wantWhole checks that r is a whole answer: the opening chunks, the
// deltas, the closing chunks of kind end ("finish", "abort" or "error"),
// then [DONE] and a clean end.
func wantWhole(t testing.TB, r reply, end string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d (%s), want 200", r.status, r.body)
	}
	if got := r.header.Get(aisdk.StreamHeader); got != aisdk.StreamVersion {
		t.Fatalf("%s header = %q, want %q", aisdk.StreamHeader, got, aisdk.StreamVersion)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type = %q", ct)
	}
	ty := r.types()
	if len(ty) < 4 || ty[0] != "start" || ty[1] != "text-start" || ty[len(ty)-2] != "text-end" || ty[len(ty)-1] != end {
		t.Fatalf("chunk types %v: want start, text-start, text-delta..., text-end, %s", ty, end)
	}
	for _, typ := range ty[2 : len(ty)-2] {
		if typ != "text-delta" {
			t.Fatalf("chunk types %v: a %s among the deltas", ty, typ)
		}
	}
	if r.messageID == "" {
		t.Fatal("the start chunk has no messageId")
	}
	if !r.done || !r.ended || r.err != nil {
		t.Fatalf("[DONE] %v, clean end %v, error %v", r.done, r.ended, r.err)
	}
}
