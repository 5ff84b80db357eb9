package securitytest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/transport"
)

type wsFrame struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Event  string `json:"event"`
	Data   string `json:"data"`
	MsgID  string `json:"msgId"`
	Status int    `json:"status"`
	Error  string `json:"error"`
}

// dialWS connects to /ws for topics, passing token as how says.
func dialWS(t *testing.T, base, token string, how via, lastID string, topics ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	q := url.Values{"topic": topics}
	if how == viaQuery {
		q.Set("authorization", token)
	}
	if lastID != "" {
		q.Set("lastEventID", lastID)
	}
	h := http.Header{}
	switch how {
	case viaHeader:
		h.Set("Authorization", "Bearer "+token)
	case viaCookie:
		h.Set("Cookie", auth.CookieName+"="+token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws?"+q.Encode(), &websocket.DialOptions{HTTPHeader: h})
	if c != nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

// readFrames reads frames until an event whose data is marker, and returns
// the data of the events before it.
func readFrames(t *testing.T, c *websocket.Conn, marker string) []string {
	t.Helper()
	var out []string
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v (got %q so far)", err, out)
		}
		var f wsFrame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
		if f.Type != "event" {
			continue
		}
		if f.Data == marker {
			return out
		}
		out = append(out, f.Data)
	}
}

// waitPosition reads frames until the position frame that ends a
// subscription's prelude: from then on, live events reach the connection.
func waitPosition(t *testing.T, c *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("no position frame: %v", err)
		}
		var f wsFrame
		json.Unmarshal(b, &f)
		if f.Type == "position" {
			return
		}
	}
}

// TestPrivateEventsOverWebSocket repeats the SSE leak checks on /ws: live
// frames and history replay.
func TestPrivateEventsOverWebSocket(t *testing.T) {
	srv := startKeyed(t, func(c *config.Server) { c.Auth.AllowAnonymous = true })
	pub := mint(t, "backend", []string{"*"}, nil, time.Hour)
	alice := mint(t, "alice", nil, []string{"secret/*"}, time.Hour)
	bob := mint(t, "bob", nil, []string{"public/*"}, time.Hour)
	start := mustPublish(t, srv.URL, pub, map[string]any{"topic": "warmup", "data": "x"})
	type sub struct {
		name  string
		token string
		how   via
		want  []string
	}
	subs := []sub{
		{"alice/header", alice, viaHeader, []string{"priv-secret", "pub-secret", "priv-both", "pub-public"}},
		{"alice/cookie", alice, viaCookie, []string{"priv-secret", "pub-secret", "priv-both", "pub-public"}},
		{"alice/query", alice, viaQuery, []string{"priv-secret", "pub-secret", "priv-both", "pub-public"}},
		{"bob", bob, viaHeader, []string{"pub-secret", "priv-public", "priv-both", "pub-public"}},
		{"anonymous", "", viaNone, []string{"pub-secret", "pub-public"}},
	}
	conns := make([]*websocket.Conn, len(subs))
	for i, s := range subs {
		c, resp, err := dialWS(t, srv.URL, s.token, s.how, "", "secret/a", "public/b")
		if err != nil {
			t.Fatalf("%s: dial: %v (%v)", s.name, err, resp)
		}
		conns[i] = c
		waitPosition(t, c)
	}
	for _, e := range []struct {
		data    string
		topics  []string
		private bool
	}{
		{"priv-secret", []string{"secret/a"}, true},
		{"pub-secret", []string{"secret/a"}, false},
		{"priv-public", []string{"public/b"}, true},
		{"priv-both", []string{"secret/a", "public/b"}, true},
		{"priv-other", []string{"secret/other"}, true},
		{"pub-public", []string{"public/b"}, false},
		{"end", []string{"secret/a", "public/b"}, false},
	} {
		mustPublish(t, srv.URL, pub, map[string]any{"topics": e.topics, "data": e.data, "private": e.private})
	}
	for i, s := range subs {
		if got := readFrames(t, conns[i], "end"); !slices.Equal(got, s.want) {
			t.Errorf("%s live: got %q, want %q", s.name, got, s.want)
		}
		c, _, err := dialWS(t, srv.URL, s.token, s.how, start, "secret/a", "public/b")
		if err != nil {
			t.Fatal(err)
		}
		if got := readFrames(t, c, "end"); !slices.Equal(got, s.want) {
			t.Errorf("%s replay: got %q, want %q", s.name, got, s.want)
		}
	}
}

func TestWebSocketAuth(t *testing.T) {
	srv := startKeyed(t, nil)
	alice := mint(t, "alice", nil, []string{"room/*"}, time.Hour)
	for _, tc := range []struct {
		name   string
		token  string
		topics []string
		status int
	}{
		{"no token", "", []string{"room/1"}, 401},
		{"forged", alice + "x", []string{"room/1"}, 401},
		{"expired", mint(t, "alice", nil, []string{"*"}, -time.Minute), []string{"room/1"}, 401},
		{"topic not covered", alice, []string{"admin"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, err := dialWS(t, srv.URL, tc.token, viaHeader, "", tc.topics...)
			if err == nil || resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("dial: %v, response %v, want %d", err, resp, tc.status)
			}
		})
	}
	// The token expires while the connection is open: an auth-expired
	// event, then close code 4401.
	exp := float64(time.Now().Add(1200*time.Millisecond).UnixMilli()) / 1000
	tok := signClaims(t, jwt.MapClaims{"sub": "alice", "exp": exp, "mercure": map[string]any{"subscribe": []string{"*"}}})
	c, _, err := dialWS(t, srv.URL, tok, viaQuery, "", "room/1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sawExpired := false
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != 4401 || !sawExpired {
				t.Fatalf("connection ended with %v (auth-expired event seen: %v), want close 4401 after the event", err, sawExpired)
			}
			break
		}
		var f wsFrame
		json.Unmarshal(b, &f)
		if f.Event == transport.AuthExpiredEventType {
			sawExpired = true
		}
	}
}

// TestSendNeedsPublishRights checks POST /send and WebSocket "send" frames:
// a client message is a publish, so it needs a token that may publish to
// its topic.
func TestSendNeedsPublishRights(t *testing.T) {
	srv := startKeyed(t, nil)
	writer := mint(t, "writer", []string{"chat/*"}, []string{"chat/*"}, time.Hour)
	reader := mint(t, "reader", nil, []string{"chat/*"}, time.Hour)
	post := func(token, topic string) (int, errBody) {
		req := mustReq(t, http.MethodPost, srv.URL+"/send")
		req.Body = jsonBody(map[string]any{"clientId": "c1", "msgId": "m-" + topic + token[:4], "topic": topic, "data": "hi"})
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, b := do(t, req)
		var e errBody
		json.Unmarshal(b, &e)
		return resp.StatusCode, e
	}
	if status, _ := post("none", "chat/1"); status != 401 {
		t.Fatalf("/send with a garbage token: %d, want 401", status)
	}
	if status, _ := post(reader, "chat/1"); status != 403 {
		t.Fatalf("/send by a reader: %d, want 403", status)
	}
	if status, _ := post(writer, "other"); status != 403 {
		t.Fatalf("/send outside the token's topics: %d, want 403", status)
	}
	if status, e := post(writer, "chat/1"); status != 200 {
		t.Fatalf("/send by a writer: %d %+v", status, e)
	}
	// The same over a WebSocket: the reader's send frame gets an error frame.
	c, _, err := dialWS(t, srv.URL, reader, viaHeader, "", "chat/1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Write(ctx, websocket.MessageText, []byte(`{"type":"send","msgId":"w1","topic":"chat/1","data":"hi"}`))
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var f wsFrame
		json.Unmarshal(b, &f)
		if f.Type == "ack" {
			t.Fatalf("reader's send frame was delivered: %s", b)
		}
		if f.Type == "error" {
			if f.MsgID != "w1" || f.Status != 403 {
				t.Fatalf("error frame %s, want status 403 for w1", b)
			}
			break
		}
	}
}
