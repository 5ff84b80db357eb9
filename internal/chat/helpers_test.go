package chat_test

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

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/chat"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/llm/openaitest"
	"github.com/heraldpush/herald/sse"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs Herald with its chat answered by up (nil: the demo model,
// without delay).
func start(t testing.TB, up *openaitest.Server, mutate func(*config.Server)) *apptest.Server {
	t.Helper()
	return apptest.Start(t, func(c *config.Server) {
		c.Core.Retry = 100 * time.Millisecond
		c.Chat.LLMDemoDelay = 0
		if up != nil {
			c.Chat.LLMBaseURL = up.BaseURL()
			c.Chat.LLMModel = "fake-model"
			c.Chat.LLMAPIKey = "sk-test"
		}
		if mutate != nil {
			mutate(c)
		}
	})
}

// tricky are tokens that an SSE relay could get wrong.
var tricky = []string{
	"Hello", ",", " world", "!\n\n", "  two  spaces", "\n", "data: not a field", "\n\nevent: x\n", "id: 7",
	" üñí©ødé", " 😀", " ", ":colon", "\ttab", "trailing space ", "\n\n\n", "{\"json\": true}",
}

// tokens returns n tokens: the tricky ones, then numbered words.
func tokens(n int) []string {
	out := make([]string, n)
	for i := range out {
		if i < len(tricky) {
			out[i] = tricky[i]
		} else if i%10 == 0 {
			out[i] = "\n"
		} else {
			out[i] = fmt.Sprintf(" w%d", i)
		}
	}
	return out
}

// post sends body as JSON to url and decodes the answer into out.
func post(t testing.TB, url string, body any, out any) int {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case string:
		r = strings.NewReader(b)
	case nil:
		r = http.NoBody
	default:
		buf, _ := json.Marshal(b)
		r = bytes.NewReader(buf)
	}
	resp, err := http.Post(url, "application/json", r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("POST %s: %d, undecodable body: %v", url, resp.StatusCode, err)
		}
	}
	return resp.StatusCode
}

// ask starts a generation and returns its id.
func ask(t testing.TB, srv *apptest.Server, question string) string {
	t.Helper()
	var st chat.Started
	if code := post(t, srv.URL+"/chat", map[string]any{"messages": []map[string]string{{"role": "user", "content": question}}}, &st); code != http.StatusCreated {
		t.Fatalf("POST /chat: %d, want 201", code)
	}
	if st.Stream != "/chat/stream/"+st.ID || st.ID == "" {
		t.Fatalf("POST /chat answered %+v", st)
	}
	return st.ID
}

// stream is what a watcher read from a chat stream.
type stream struct {
	status  int
	tokens  []string
	ids     []string // id of every event, in order
	types   []string // type of every event, in order
	done    *chat.Done
	fail    *chat.Error
	finalID string // id of the done or error event
	lastID  string // the Last-Event-ID an EventSource would send next
	resets  int
	ended   bool // the server ended the stream
}

func (s *stream) text() string { return strings.Join(s.tokens, "") }

// follow reads stream id from lastID ("" for a new watcher) until the
// server ends it, or until it has read maxTokens tokens (0: no limit) and
// then drops the connection.
func follow(t testing.TB, base, id, lastID string, maxTokens int) stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/chat/stream/"+id, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET stream: %v", err)
	}
	defer resp.Body.Close()
	s := stream{status: resp.StatusCode, lastID: lastID}
	if resp.StatusCode != http.StatusOK {
		return s
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream; charset=utf-8" {
		t.Fatalf("Content-Type = %q", ct)
	}
	dec := sse.NewDecoder(resp.Body)
	for {
		ev, err := dec.Next()
		if errors.Is(err, io.EOF) {
			s.ended = true
			s.lastID = dec.LastEventID()
			return s
		}
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("stream %s did not end within 20s (read %d tokens)", id, len(s.tokens))
			}
			t.Fatalf("reading stream: %v", err)
		}
		s.lastID = dec.LastEventID()
		s.ids = append(s.ids, ev.ID)
		s.types = append(s.types, ev.Type)
		switch ev.Type {
		case chat.EventToken:
			s.tokens = append(s.tokens, ev.Data)
			if maxTokens > 0 && len(s.tokens) == maxTokens {
				return s // drop the connection mid-answer
			}
		case chat.EventDone:
			s.done = new(chat.Done)
			if err := json.Unmarshal([]byte(ev.Data), s.done); err != nil {
				t.Fatalf("done data %q: %v", ev.Data, err)
			}
			s.finalID = ev.ID
		case chat.EventError:
			s.fail = new(chat.Error)
			if err := json.Unmarshal([]byte(ev.Data), s.fail); err != nil {
				t.Fatalf("error data %q: %v", ev.Data, err)
			}
			s.finalID = ev.ID
		case "herald.reset":
			s.resets++
		default:
			t.Fatalf("unexpected event %q: %q", ev.Type, ev.Data)
		}
	}
}

// finish follows stream id to its end and returns the final read.
func finish(t testing.TB, base, id string) stream {
	t.Helper()
	s := follow(t, base, id, "", 0)
	if s.status != http.StatusOK || (s.done == nil && s.fail == nil) {
		t.Fatalf("stream %s: status %d, no final event", id, s.status)
	}
	return s
}
