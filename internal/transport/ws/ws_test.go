package ws_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/internal/transport/ws"
	"github.com/heraldpush/herald/pubsub"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// frame is any frame the server sends.
type frame struct {
	Type        string   `json:"type"`
	ID          string   `json:"id"`
	Event       string   `json:"event"`
	Data        string   `json:"data"`
	Topics      []string `json:"topics"` // never sent: must stay nil
	Final       bool     `json:"final"`
	Reason      string   `json:"reason"`
	LastEventID string   `json:"lastEventId"`
	MsgID       string   `json:"msgId"`
	Duplicate   bool     `json:"duplicate"`
	Status      int      `json:"status"`
	Error       string   `json:"error"`
	T           any      `json:"t"`
}

func wsURL(srv *apptest.Server, query string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws?" + query
}

func dial(t *testing.T, srv *apptest.Server, query string) *websocket.Conn {
	t.Helper()
	return dialWith(t, srv, query, &http.Transport{})
}

// dialCountingPongs is dial on a connection that counts the pongs the
// client writes (the WebSocket library answers the server's pings while
// the client reads): a test waits for pings answered, not for time.
func dialCountingPongs(t *testing.T, srv *apptest.Server, query string) (*websocket.Conn, *atomic.Int64) {
	t.Helper()
	pongs := new(atomic.Int64)
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return pongCounter{c, pongs}, nil
	}}
	return dialWith(t, srv, query, tr), pongs
}

// pongCounter counts the writes that start a pong frame (FIN, opcode 0xA):
// the library writes each control frame with one write.
type pongCounter struct {
	net.Conn
	pongs *atomic.Int64
}

func (c pongCounter) Write(p []byte) (int, error) {
	if len(p) > 0 && p[0] == 0x8A {
		c.pongs.Add(1)
	}
	return c.Conn.Write(p)
}

func dialWith(t *testing.T, srv *apptest.Server, query string, tr *http.Transport) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	// A transport of its own: a pooled connection to a port an earlier
	// test's server used (and closed) would fail the handshake.
	t.Cleanup(tr.CloseIdleConnections)
	c, resp, err := websocket.Dial(ctx, wsURL(srv, query), &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatalf("dial /ws?%s: %v", query, err)
	}
	if resp.Body != nil {
		resp.Body.Close()
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func read(t *testing.T, c *websocket.Conn) frame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("frame type %v, want text", typ)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("frame %s: %v", b, err)
	}
	return f
}

// readClose reads until the connection closes and returns the close code
// and reason, and the frames read before.
func readClose(t *testing.T, c *websocket.Conn) (websocket.StatusCode, string, []frame) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var frames []frame
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if ok := asClose(err, &ce); ok {
				return ce.Code, ce.Reason, frames
			}
			t.Fatalf("read until close: %v", err)
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("frame %s: %v", b, err)
		}
		frames = append(frames, f)
	}
}

func asClose(err error, ce *websocket.CloseError) bool {
	code := websocket.CloseStatus(err)
	if code == -1 {
		return false
	}
	// CloseStatus found a CloseError; get its reason too.
	for e := err; e != nil; {
		if x, ok := e.(websocket.CloseError); ok {
			*ce = x
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	*ce = websocket.CloseError{Code: code}
	return true
}

func write(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func publish(t testing.TB, srv *apptest.Server, body string) string {
	t.Helper()
	resp, err := http.Post(srv.URL+"/publish", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		ID    string `json:"id"`
		Error string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&r)
	if resp.StatusCode != 200 {
		t.Fatalf("publish %s: %d %s", body, resp.StatusCode, r.Error)
	}
	return r.ID
}

func post(t *testing.T, srv *apptest.Server, ctype, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(srv.URL+"/send", ctype, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("POST /send %s: status %d, body not JSON: %v", body, resp.StatusCode, err)
	}
	return resp.StatusCode, m
}

// history returns the data of every event of topic, in order.
func history(t *testing.T, srv *apptest.Server, topic string) []string {
	t.Helper()
	b := srv.App.Hub().Broker()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	snap, err := readAll(ctx, b, topic)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestLiveEventsHaveTheSSEIds(t *testing.T) {
	srv := apptest.Start(t, nil)
	c := dial(t, srv, "topic=a&topic=b")
	if f := read(t, c); f.Type != "position" || f.ID == "" {
		t.Fatalf("first frame %+v, want a position", f)
	}
	id := publish(t, srv, `{"topic":"a","event":"price","data":{"eur":1.08}}`)
	f := read(t, c)
	want := frame{Type: "event", ID: id, Event: "price", Data: `{"eur":1.08}`}
	if fmt.Sprint(f) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", f, want)
	}
	id2 := publish(t, srv, `{"topics":["b","c"],"data":"multi\nline"}`)
	if f := read(t, c); f.ID != id2 || f.Data != "multi\nline" || f.Event != "" || f.Topics != nil {
		t.Fatalf("got %+v", f)
	}
}

func TestResume(t *testing.T) {
	srv := apptest.Start(t, nil)
	var ids []string
	for i := range 4 {
		ids = append(ids, publish(t, srv, fmt.Sprintf(`{"topic":"r","data":"e%d"}`, i)))
	}
	publish(t, srv, `{"topic":"other","data":"x"}`)
	head := publish(t, srv, `{"topic":"r","data":"e4"}`)
	ids = append(ids, head)

	check := func(t *testing.T, c *websocket.Conn) {
		for i := 2; i < 5; i++ {
			f := read(t, c)
			if f.Type != "event" || f.ID != ids[i] || f.Data != fmt.Sprintf("e%d", i) {
				t.Fatalf("event %d: got %+v, want id %s", i, f, ids[i])
			}
		}
		live := publish(t, srv, `{"topic":"r","data":"live"}`)
		for {
			// Earlier subtests' live events are history now.
			f := read(t, c)
			if f.ID == live {
				break
			}
			if f.Data != "live" {
				t.Fatalf("after replay got %+v, want the live event %s", f, live)
			}
		}
	}
	t.Run("query", func(t *testing.T) {
		check(t, dial(t, srv, "topic=r&lastEventID="+url.QueryEscape(ids[1])))
	})
	t.Run("frame", func(t *testing.T) {
		c := dial(t, srv, "topic=r&resume=frame")
		write(t, c, map[string]string{"type": "resume", "lastEventId": ids[1]})
		check(t, c)
	})
	t.Run("frame-new-subscriber", func(t *testing.T) {
		c := dial(t, srv, "topic=r&resume=frame")
		write(t, c, map[string]string{"type": "resume", "lastEventId": ""})
		if f := read(t, c); f.Type != "position" {
			t.Fatalf("got %+v, want a position", f)
		}
	})
}

func TestFramesBeforeTheResumeFrameAreAnswered(t *testing.T) {
	srv := apptest.Start(t, nil)
	c := dial(t, srv, "topic=early&resume=frame")
	write(t, c, `{"type":"ping","t":1}`)
	if f := read(t, c); f.Type != "pong" {
		t.Fatalf("got %+v, want a pong before the resume", f)
	}
	write(t, c, `{"type":"resume","lastEventId":null}`)
	if f := read(t, c); f.Type != "position" {
		t.Fatalf("got %+v, want a position", f)
	}
}

func TestResumeFrameTimeout(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) { c.WS.ResumeTimeout = 100 * time.Millisecond })
	c := dial(t, srv, "topic=r&resume=frame")
	code, reason, _ := readClose(t, c)
	if code != websocket.StatusCode(ws.CloseResumeTimeout) {
		t.Fatalf("close %d %q, want %d", code, reason, ws.CloseResumeTimeout)
	}
}

func TestReset(t *testing.T) {
	srv := apptest.Start(t, nil)
	first := publish(t, srv, `{"topic":"r","data":"one"}`)
	c := dial(t, srv, "topic=r&lastEventID=garbage")
	f := read(t, c)
	if f.Type != "reset" || f.Reason != "invalid-id" || f.LastEventID != "garbage" {
		t.Fatalf("got %+v, want a reset invalid-id", f)
	}
	if f := read(t, c); f.ID != first {
		t.Fatalf("after the reset got %+v, want the history from the start", f)
	}
	epoch := strings.Split(first, "-")[0]
	c2 := dial(t, srv, "topic=r&lastEventID=zz"+epoch+"-1")
	if f := read(t, c2); f.Type != "reset" || f.Reason != "epoch-changed" {
		t.Fatalf("got %+v, want a reset epoch-changed", f)
	}
}

func TestRetainedAndFinal(t *testing.T) {
	srv := apptest.Start(t, nil)
	publish(t, srv, `{"topic":"job","data":"10%","retain":true}`)
	retained := publish(t, srv, `{"topic":"job","data":"50%","retain":true}`)
	c := dial(t, srv, "topic=job")
	if f := read(t, c); f.ID != retained || f.Data != "50%" {
		t.Fatalf("new subscriber got %+v, want the retained event", f)
	}
	final := publish(t, srv, `{"topic":"job","data":"done","final":true}`)
	code, reason, frames := readClose(t, c)
	if len(frames) != 1 || frames[0].ID != final || !frames[0].Final {
		t.Fatalf("frames before close %+v, want the final event", frames)
	}
	if code != websocket.StatusCode(ws.CloseFinished) || reason != "finished" {
		t.Fatalf("close %d %q, want 1000 finished", code, reason)
	}

	// Resuming at the final event: nothing more will come.
	c2 := dial(t, srv, "topic=job&lastEventID="+url.QueryEscape(final))
	code, _, frames = readClose(t, c2)
	if code != websocket.StatusCode(ws.CloseAlreadyFinished) || len(frames) != 0 {
		t.Fatalf("resume at final: close %d after %+v, want %d and no frame", code, frames, ws.CloseAlreadyFinished)
	}
	// Resuming before it: the final event, then the close.
	c3 := dial(t, srv, "topic=job&lastEventID="+url.QueryEscape(retained))
	code, _, frames = readClose(t, c3)
	if code != websocket.StatusCode(ws.CloseFinished) || len(frames) != 1 || frames[0].ID != final {
		t.Fatalf("resume before final: close %d after %+v", code, frames)
	}
}

func TestSendDeliversOnceAcrossTransports(t *testing.T) {
	srv := apptest.Start(t, nil)
	sub := dial(t, srv, "topic=chat")
	read(t, sub) // position

	c := dial(t, srv, "topic=chat&clientId=tab-1")
	read(t, c)
	msg := map[string]any{"type": "send", "msgId": "m1", "topic": "chat", "event": "say", "data": map[string]string{"text": "hi"}}
	write(t, c, msg)
	var ack frame
	for {
		f := read(t, c)
		if f.Type == "ack" {
			ack = f
			break
		}
		if f.Type != "event" {
			t.Fatalf("got %+v, want an ack", f)
		}
	}
	if ack.MsgID != "m1" || ack.ID == "" || ack.Duplicate {
		t.Fatalf("ack %+v", ack)
	}
	if f := read(t, sub); f.ID != ack.ID || f.Event != "say" || f.Data != `{"text":"hi"}` {
		t.Fatalf("subscriber got %+v, want the sent message as %s", f, ack.ID)
	}

	// The same message again over the WebSocket: acknowledged, not delivered.
	write(t, c, msg)
	for {
		f := read(t, c)
		if f.Type == "ack" {
			if f.MsgID != "m1" || f.ID != ack.ID || !f.Duplicate {
				t.Fatalf("retry ack %+v, want duplicate of %s", f, ack.ID)
			}
			break
		}
	}
	// And after a switch to SSE, over POST /send with the same ids.
	status, body := post(t, srv, "application/json", `{"clientId":"tab-1","msgId":"m1","topic":"chat","event":"say","data":{"text":"hi"}}`)
	if status != 200 || body["id"] != ack.ID || body["duplicate"] != true {
		t.Fatalf("POST /send retry: %d %v", status, body)
	}
	// Another client may use the same message id.
	status, body = post(t, srv, "application/json", `{"clientId":"tab-2","msgId":"m1","topic":"chat","data":"hello"}`)
	if status != 200 || body["duplicate"] != nil || body["id"] == ack.ID {
		t.Fatalf("POST /send other client: %d %v", status, body)
	}
	// The same id with other content is refused.
	status, body = post(t, srv, "application/json", `{"clientId":"tab-1","msgId":"m1","topic":"chat","data":"changed"}`)
	if status != http.StatusConflict {
		t.Fatalf("POST /send reused id: %d %v, want 409", status, body)
	}
	if got := history(t, srv, "chat"); len(got) != 2 {
		t.Fatalf("history %q, want 2 events", got)
	}
}

func TestBadFramesKeepTheConnection(t *testing.T) {
	srv := apptest.Start(t, nil)
	c := dial(t, srv, "topic=x")
	read(t, c)
	cases := []struct {
		name  string
		frame any
		msgID string
		want  string
	}{
		{"not json", "hello", "", "malformed JSON"},
		{"trailing data", `{"type":"ping"} {}`, "", "trailing data"},
		{"no type", `{"msgId":"a"}`, "a", `missing "type"`},
		{"unknown type", `{"type":"subscribe"}`, "", "unknown frame type"},
		{"unknown field", `{"type":"send","msgId":"b","topic":"x","extra":1}`, "", "unknown field"},
		{"late resume", `{"type":"resume","lastEventId":""}`, "", `unexpected "resume"`},
		{"no msgId", `{"type":"send","topic":"x","data":"d"}`, "", `missing "msgId"`},
		{"no topic", `{"type":"send","msgId":"c","data":"d"}`, "c", `missing "topic"`},
		{"bad topic", `{"type":"send","msgId":"d","topic":"a\u0001b"}`, "d", "control character"},
		{"reserved event", `{"type":"send","msgId":"e","topic":"x","event":"herald.reset"}`, "e", "reserved"},
		{"event with newline", `{"type":"send","msgId":"f","topic":"x","event":"a\nb"}`, "f", "CR or LF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			write(t, c, tc.frame)
			f := read(t, c)
			if f.Type != "error" || f.Status != 400 || f.MsgID != tc.msgID || !strings.Contains(f.Error, tc.want) {
				t.Fatalf("got %+v, want a 400 error frame for %q containing %q", f, tc.msgID, tc.want)
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageBinary, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if f := read(t, c); f.Type != "error" || !strings.Contains(f.Error, "binary") {
		t.Fatalf("binary frame: got %+v", f)
	}
	// Still usable.
	write(t, c, `{"type":"ping","t":42}`)
	if f := read(t, c); f.Type != "pong" || f.T != float64(42) {
		t.Fatalf("got %+v, want pong 42", f)
	}
	write(t, c, `{"type":"send","msgId":"ok","topic":"x","data":"fine"}`)
	var gotAck, gotEvent bool
	for !gotAck || !gotEvent {
		f := read(t, c)
		gotAck = gotAck || f.Type == "ack" && f.MsgID == "ok"
		gotEvent = gotEvent || f.Type == "event" && f.Data == "fine"
	}
}

func TestOversizedFrameClosesWith1009(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) { c.WS.MaxFrameBytes = 1024 })
	c := dial(t, srv, "topic=x")
	read(t, c)
	write(t, c, `{"type":"send","msgId":"big","topic":"x","data":"`+strings.Repeat("a", 2000)+`"}`)
	code, _, _ := readClose(t, c)
	if code != websocket.StatusMessageTooBig {
		t.Fatalf("close %d, want 1009", code)
	}
}

func TestCrossOrigin(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) {
		c.HTTP.CORSOrigins = config.Strings{"https://app.example", "*"}
		c.WS.Origins = config.Strings{"*.example.org"}
	})
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"https://app.example", true},       // --cors-origins
		{"https://chat.example.org", true},  // --ws-origin pattern
		{"http://app.example", false},       // another scheme is another origin
		{"https://evil.example.net", false}, // "*" in --cors-origins does not open WebSockets
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, resp, err := websocket.Dial(ctx, wsURL(srv, "topic=a"), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {tc.origin}}})
		cancel()
		if tc.ok != (err == nil) {
			t.Errorf("origin %s: %v, want allowed=%v", tc.origin, err, tc.ok)
		}
		if c != nil {
			c.CloseNow()
		}
		if !tc.ok && (resp == nil || resp.StatusCode != http.StatusForbidden) {
			t.Errorf("origin %s: %v, want 403", tc.origin, resp)
		}
	}
}

func TestBadRequestsGetJSONErrors(t *testing.T) {
	srv := apptest.Start(t, nil)
	upgrade := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-WebSocket-Version": {"13"}, "Sec-WebSocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	cases := []struct {
		name   string
		method string
		query  string
		header http.Header
		status int
		want   string
	}{
		{"not an upgrade", "GET", "topic=a", nil, http.StatusUpgradeRequired, "WebSocket"},
		{"post", "POST", "topic=a", upgrade, http.StatusMethodNotAllowed, "GET"},
		{"no topic", "GET", "", upgrade, http.StatusBadRequest, "topic"},
		{"bad topic", "GET", "topic=%01", upgrade, http.StatusBadRequest, "control"},
		{"bad resume", "GET", "topic=a&resume=yes", upgrade, http.StatusBadRequest, "resume"},
		{"resume twice", "GET", "topic=a&resume=frame&lastEventID=x-1", upgrade, http.StatusBadRequest, "not both"},
		{"bad client id", "GET", "topic=a&clientId=a%20b", upgrade, http.StatusBadRequest, "clientId"},
		{"bad version", "GET", "topic=a", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-WebSocket-Version": {"8"}, "Sec-WebSocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}, http.StatusBadRequest, "version"},
		{"foreign origin", "GET", "topic=a", http.Header{"Origin": {"https://evil.example"}, "Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-WebSocket-Version": {"13"}, "Sec-WebSocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}, http.StatusForbidden, "Origin"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+"/ws?"+tc.query, nil)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Error string }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body not JSON: %v", err)
			}
			if resp.StatusCode != tc.status || !strings.Contains(body.Error, tc.want) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, body.Error, tc.status, tc.want)
			}
		})
	}
}

func TestSendHTTPBadInput(t *testing.T) {
	srv := apptest.Start(t, nil)
	big := `{"clientId":"c","msgId":"m","topic":"t","data":"` + strings.Repeat("x", 1<<20+1) + `"}`
	cases := []struct {
		name   string
		ctype  string
		body   string
		status int
		want   string
	}{
		{"form", "application/x-www-form-urlencoded", "a=b", 415, "Content-Type"},
		{"malformed", "application/json", `{"clientId":`, 400, "malformed JSON"},
		{"unknown field", "application/json", `{"clientId":"c","msgId":"m","topic":"t","topics":["x"]}`, 400, "unknown field"},
		{"two values", "application/json", `{"clientId":"c","msgId":"m","topic":"t"}{}`, 400, "trailing"},
		{"no client", "application/json", `{"msgId":"m","topic":"t"}`, 400, `"clientId"`},
		{"no msgId", "application/json", `{"clientId":"c","topic":"t"}`, 400, `"msgId"`},
		{"long msgId", "application/json", `{"clientId":"c","msgId":"` + strings.Repeat("m", 129) + `","topic":"t"}`, 400, "longer"},
		{"no topic", "application/json", `{"clientId":"c","msgId":"m","data":1}`, 400, `"topic"`},
		{"event without topic", "application/json", `{"clientId":"c","msgId":"m","event":"e"}`, 400, `"topic"`},
		{"long topic", "application/json", `{"clientId":"c","msgId":"m","topic":"` + strings.Repeat("t", 257) + `"}`, 400, "longer"},
		{"reserved event", "application/json", `{"clientId":"c","msgId":"m","topic":"t","event":"herald.x"}`, 400, "reserved"},
		{"too large", "application/json", big, 413, "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := post(t, srv, tc.ctype, tc.body)
			if status != tc.status || !strings.Contains(fmt.Sprint(body["error"]), tc.want) {
				t.Fatalf("got %d %v, want %d containing %q", status, body, tc.status, tc.want)
			}
		})
	}
	req, _ := http.NewRequest("GET", srv.URL+"/send", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("GET /send: %d, want 405", resp.StatusCode)
	}
}

func TestSlowConsumerIsCutOff(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) {
		c.Limits.QueueBytes = 64 << 10
		c.Core.WriteTimeout = 300 * time.Millisecond
	})
	// A raw TCP client that upgrades and then never reads.
	u, _ := url.Parse(srv.URL)
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	fmt.Fprintf(nc, "GET /ws?topic=slow HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", u.Host)
	buf := make([]byte, 12)
	if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != "HTTP/1.1 101" {
		t.Fatalf("handshake: %q %v", buf, err)
	}
	healthy := dial(t, srv, "topic=slow")
	read(t, healthy)

	data := strings.Repeat("x", 16<<10)
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; srv.App.Hub().Stats().SlowDisconnects == 0; n++ {
		if time.Now().After(deadline) {
			t.Fatalf("no slow-consumer disconnect after %d events", n)
		}
		publish(t, srv, `{"topic":"slow","data":"`+data+`"}`)
		// The healthy subscriber keeps up.
		if f := read(t, healthy); f.Type != "event" {
			t.Fatalf("healthy subscriber got %+v", f)
		}
	}
	testkit.WaitFor(t, "the slow connection to end", func() bool { return srv.App.Hub().TopicCounts()["slow"] == 1 })
	id := publish(t, srv, `{"topic":"slow","data":"after"}`)
	if f := read(t, healthy); f.ID != id {
		t.Fatalf("healthy subscriber got %+v after the cut-off", f)
	}
}

func TestDeadClientIsDetectedByPing(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) {
		c.WS.PingInterval = 50 * time.Millisecond
		c.WS.PingTimeout = 100 * time.Millisecond
	})
	// A client that never reads never answers pings.
	dial(t, srv, "topic=p")
	testkit.WaitFor(t, "the subscription", func() bool { return srv.App.Hub().TopicCounts()["p"] == 1 })
	testkit.WaitFor(t, "the dead connection to be closed", func() bool { return srv.App.Hub().TopicCounts()["p"] == 0 })

	// A client that reads answers them and stays.
	c, pongs := dialCountingPongs(t, srv, "topic=p")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	frames := make(chan frame, 10)
	go func() {
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				close(frames)
				return
			}
			var f frame
			json.Unmarshal(b, &f)
			frames <- f
		}
	}()
	<-frames // position
	testkit.WaitFor(t, "ten pings answered", func() bool { return pongs.Load() >= 10 })
	id := publish(t, srv, `{"topic":"p","data":"alive"}`)
	if f, ok := <-frames; !ok || f.ID != id {
		t.Fatalf("live client got %+v (open %v), want %s", f, ok, id)
	}
}

func TestDisabled(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) { c.WS.Disable = true })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, wsURL(srv, "topic=a"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("dial: %v %v, want 403", err, resp)
	}
	// POST /send still works, for SSE clients.
	if status, body := post(t, srv, "application/json", `{"clientId":"c","msgId":"m","topic":"t","data":"d"}`); status != 200 {
		t.Fatalf("POST /send: %d %v", status, body)
	}
}

func TestShutdownClosesWithGoingAway(t *testing.T) {
	srv := apptest.Start(t, nil)
	c := dial(t, srv, "topic=a")
	read(t, c)
	waiting := dial(t, srv, "topic=a&resume=frame") // not subscribed yet
	go srv.Stop()
	for _, c := range []*websocket.Conn{c, waiting} {
		if code, reason, _ := readClose(t, c); code != websocket.StatusCode(ws.CloseGoingAway) {
			t.Fatalf("close %d %q, want 1001", code, reason)
		}
	}
}

func TestMetricsByTransport(t *testing.T) {
	srv := apptest.Start(t, nil)
	c := dial(t, srv, "topic=m")
	read(t, c)
	publish(t, srv, `{"topic":"m","data":"x"}`)
	read(t, c)
	write(t, c, `{"type":"send","msgId":"1","topic":"m","data":"y"}`)
	for f := read(t, c); f.Type != "ack"; f = read(t, c) {
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`herald_connections{transport="ws"} 1`,
		`herald_client_messages_total{result="delivered",transport="ws"} 1`,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
	testkit.WaitFor(t, "events_written to be counted", func() bool {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return bytes.Contains(b, []byte(`herald_events_written_total{transport="ws"}`)) && bytes.Contains(b, []byte(`herald_connections{transport="ws"} 0`))
	})
}

func readAll(ctx context.Context, b pubsub.Broker, topic string) ([]string, error) {
	snap, err := b.Read(ctx, pubsub.Query{Topics: []string{topic}, After: &pubsub.Position{Epoch: b.Epoch()}})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range snap.Events {
		out = append(out, m.Data)
	}
	return out, nil
}

func TestSendWebhookFlag(t *testing.T) {
	got := make(chan map[string]any, 4)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p map[string]any
		json.NewDecoder(r.Body).Decode(&p)
		p["key"] = r.Header.Get("Idempotency-Key")
		got <- p
		w.WriteHeader(http.StatusAccepted)
	}))
	defer backend.Close()
	srv := apptest.Start(t, func(c *config.Server) { c.WS.SendWebhook = backend.URL })

	if status, body := post(t, srv, "application/json", `{"clientId":"c","msgId":"m1","data":{"q":"hello?"}}`); status != 200 {
		t.Fatalf("POST /send: %d %v", status, body)
	}
	if p := <-got; p["transport"] != "http" || p["key"] != "c:m1" || fmt.Sprint(p["data"]) != "map[q:hello?]" {
		t.Fatalf("backend got %v", p)
	}
	c := dial(t, srv, "topic=x&clientId=c")
	read(t, c)
	write(t, c, `{"type":"send","msgId":"m2","topic":"x","data":"both"}`)
	var ack frame
	for ack.Type != "ack" {
		ack = read(t, c)
	}
	if p := <-got; p["transport"] != "ws" || p["id"] != ack.ID || p["topic"] != "x" {
		t.Fatalf("backend got %v, want the ws message published as %s", p, ack.ID)
	}
}

// A WebSocket outlives the server's header, body and idle timeouts: they
// are for requests, not for upgraded connections.
func TestConnectionOutlivesServerTimeouts(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) {
		c.HTTP.ReadHeaderTimeout = 100 * time.Millisecond
		c.HTTP.ReadBodyTimeout = 100 * time.Millisecond
		c.HTTP.IdleTimeout = 100 * time.Millisecond
		c.WS.PingInterval = 50 * time.Millisecond
	})
	c, pongs := dialCountingPongs(t, srv, "topic=long")
	read(t, c)
	// The client says nothing for longer than the timeouts: the server
	// pings it after 50ms without writing, so three pings answered in a
	// row mean at least 150ms of silence from the client, by the server's
	// clock. The library answers pings while a Read waits.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	frames := make(chan frame)
	go func() {
		defer close(frames)
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			var f frame
			json.Unmarshal(b, &f)
			select {
			case frames <- f:
			case <-ctx.Done():
				return
			}
		}
	}()
	for i := range 5 {
		n := pongs.Load()
		testkit.WaitFor(t, "three pings answered in silence", func() bool { return pongs.Load() >= n+3 })
		write(t, c, fmt.Sprintf(`{"type":"ping","t":%d}`, i))
		if f, ok := <-frames; !ok || f.Type != "pong" || f.T != float64(i) {
			t.Fatalf("after silence %d: %+v (open %v)", i+1, f, ok)
		}
	}
	id := publish(t, srv, `{"topic":"long","data":"still here"}`)
	if f, ok := <-frames; !ok || f.ID != id {
		t.Fatalf("got %+v (open %v)", f, ok)
	}
}
