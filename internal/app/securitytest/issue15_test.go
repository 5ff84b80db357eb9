package securitytest_test

// The findings of issue 15 (one access layer), each with the test that
// reproduces it. docs/security.md lists them with these names.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/app"
	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/internal/transport"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/sse"
)

// send sends req with extra headers and returns the status and error code.
func sendReq(t *testing.T, method, u, body string, hdr map[string]string) (int, errBody, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, b := do(t, req)
	var e errBody
	json.Unmarshal(b, &e)
	return resp.StatusCode, e, b
}

const form = "application/x-www-form-urlencoded"

// natsWithPassword configures the NATS broker with credentials in its URL
// (the shared NATS has no authorization: it ignores them).
func natsWithPassword(t *testing.T) func(*config.Server) {
	addr := "127.0.0.1:4222"
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("NATS is not reachable at %s (CI is set, so this fails): %v", addr, err)
		}
		t.Skipf("NATS is not reachable at %s and CI is unset: skipping (%v)", addr, err)
	}
	c.Close()
	stream := "HERALD_ACCESS_TEST_" + strings.ToUpper(pubsub.NewEpoch())
	t.Cleanup(func() {
		nc, err := natsgo.Connect("nats://" + addr)
		if err != nil {
			return
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = js.DeleteStream(ctx, stream)
		_ = js.DeleteKeyValue(ctx, stream+"_state")
	})
	return func(c *config.Server) {
		c.Broker.URL = "nats://herald:PASSWORD-123@" + addr
		c.Broker.Stream = stream
	}
}

// TestBrokerCredentialsRedacted: --broker nats://user:PASSWORD@host shows
// no password on /readyz (unauthenticated), in the "herald listening" log
// line, or on the dashboard. (`herald config print` is tested in
// internal/cli.)
func TestBrokerCredentialsRedacted(t *testing.T) {
	withNATS := natsWithPassword(t)
	var logs syncBuffer
	cfg := apptest.Config()
	withNATS(&cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil))) }()
	testkit.WaitFor(t, "the herald listening line", func() bool { return strings.Contains(logs.String(), "herald listening") })
	line := logs.String()
	i := strings.Index(line, "addr=")
	addr := strings.Fields(line[i+len("addr="):])[0]
	base := "http://" + addr
	status, _, ready := sendReq(t, "GET", base+"/readyz", "", nil)
	// The dashboard's first sample (development mode: loopback only).
	req := mustReq(t, "GET", base+"/dashboard/stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ds := testkit.NewStream(t, resp, nil)
	sample, before := ds.Until(t, func(ev sse.Event) bool { return strings.Contains(ev.Data, "broker") })
	ds.Close()
	var dash strings.Builder
	for _, ev := range append(before, sample) {
		dash.WriteString(ev.Data + "\n")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if status != 200 || !strings.Contains(string(ready), "herald:xxxxx@") {
		t.Fatalf("/readyz: %d %s", status, ready)
	}
	for name, text := range map[string]string{"/readyz": string(ready), "log": logs.String(), "dashboard": dash.String()} {
		if strings.Contains(text, "PASSWORD-123") {
			t.Errorf("%s shows the broker password:\n%s", name, text)
		}
	}
}

// TestAdminForwardedClientIsRemote: with --trusted-proxies 127.0.0.1/32
// and no --admin-token, a client the proxy names is remote: POST
// /admin/purge answered 200 before.
func TestAdminForwardedClientIsRemote(t *testing.T) {
	srv := startWith(t, func(c *config.Server) { c.HTTP.TrustedProxies = config.Strings{"127.0.0.1/32"} })
	for _, xff := range []string{"203.0.113.7", "127.0.0.1", "203.0.113.7:5555", "unknown"} {
		status, e, b := sendReq(t, "POST", srv.URL+"/admin/purge", "topic=x", map[string]string{"Content-Type": form, "X-Forwarded-For": xff})
		if status != http.StatusForbidden || e.Code != access.CodeLoopbackOnly {
			t.Errorf("purge forwarded for %q: %d %s, want 403 loopback_only", xff, status, b)
		}
	}
	if status, _, b := sendReq(t, "POST", srv.URL+"/admin/purge", "topic=x", map[string]string{"Content-Type": form}); status != 200 {
		t.Fatalf("local purge: %d %s", status, b)
	}
}

// TestAdminCrossSiteAndRebinding: without --admin-token, a page of another
// origin cannot purge or disconnect everyone (200 before), and in
// development mode a DNS-rebound page (Host: attacker.example) can neither
// publish nor reach the admin API.
func TestAdminCrossSiteAndRebinding(t *testing.T) {
	srv := startWith(t, nil)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	evil := map[string]string{"Content-Type": form, "Origin": "https://evil.example"}
	for path, body := range map[string]string{"/admin/purge": "topic=x", "/admin/disconnect": "all=true"} {
		if status, e, b := sendReq(t, "POST", srv.URL+path, body, evil); status != http.StatusForbidden || e.Code != access.CodeOriginForbidden {
			t.Errorf("POST %s from a foreign page: %d %s", path, status, b)
		}
	}
	rebound := map[string]string{"Content-Type": form, "Host": "attacker.example:" + port, "Origin": "http://attacker.example:" + port}
	for path, body := range map[string]string{"/publish": "topic=a&data=x", "/admin/purge": "topic=x", "/.well-known/mercure": "topic=a&data=x", "/sse/broadcast": "message=x"} {
		if status, e, b := sendReq(t, "POST", srv.URL+path, body, rebound); status != http.StatusForbidden || e.Code != access.CodeHostForbidden {
			t.Errorf("POST %s through DNS rebinding: %d %s, want 403 host_forbidden", path, status, b)
		}
	}
	if s, resp, b := openHeaders(t, srv.URL+"/events?topic=a", map[string]string{"Host": "attacker.example:" + port}); s {
		t.Errorf("subscribe through DNS rebinding: %d %s", resp.StatusCode, b)
	}
	// The server's own pages work.
	own := map[string]string{"Content-Type": form, "Origin": srv.URL}
	if status, _, b := sendReq(t, "POST", srv.URL+"/publish", "topic=a&data=x", own); status != 200 {
		t.Fatalf("same-origin publish: %d %s", status, b)
	}
}

// openHeaders opens a stream with headers; it reports whether it was
// accepted, closing it.
func openHeaders(t *testing.T, u string, hdr map[string]string) (bool, *http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		return true, resp, nil
	}
	b, _ := io.ReadAll(resp.Body)
	return false, resp, b
}

// TestClientAddressFailsClosed: behind a trusted proxy, an X-Forwarded-For
// hop that does not parse made the resolver fall back to the proxy's own
// loopback address: development-mode publishing opened and per-address
// limits were skipped.
func TestClientAddressFailsClosed(t *testing.T) {
	srv := startWith(t, func(c *config.Server) {
		c.HTTP.TrustedProxies = config.Strings{"127.0.0.1/32"}
		c.HTTP.MaxConnectionsPerIP = 1
	})
	for _, hop := range []string{"203.0.113.7:5555", "[2001:db8::1]", "unknown", "203.0.113.7, garbage"} {
		status, e, b := sendReq(t, "POST", srv.URL+"/publish", "topic=a&data=x", map[string]string{"Content-Type": form, "X-Forwarded-For": hop})
		if status != http.StatusForbidden || e.Code != access.CodeLoopbackOnly {
			t.Errorf("publish forwarded for %q: %d %s, want 403 loopback_only", hop, status, b)
		}
	}
	// Clients of unknown address share one limit; they do not skip it.
	h := http.Header{"X-Forwarded-For": {"unknown"}}
	if openWith(t, srv.URL, h, "a") == nil {
		t.Fatal("first stream of an unknown client refused")
	}
	resp, b := streamReq(t, srv.URL, h, "b")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second stream of an unknown client: %d %s, want 429", resp.StatusCode, b)
	}
}

// TestChatAnswersNotReadableThroughMercure: without --allow-anonymous, a
// token for topic "a" got 403 on /chat/stream/<id> but read the whole
// answer on /.well-known/mercure?topic=chat/<id>&lastEventID=earliest.
func TestChatAnswersNotReadableThroughMercure(t *testing.T) {
	srv := startKeyed(t, func(c *config.Server) { c.Chat.LLMDemoDelay = time.Millisecond })
	owner := mint(t, "owner", nil, []string{"chat/*"}, time.Hour)
	other := mint(t, "other", nil, []string{"a"}, time.Hour)
	id := startChat(t, srv.URL, map[string]string{"Authorization": "Bearer " + owner})
	if status, _, b := sendReq(t, "GET", srv.URL+"/chat/stream/"+id, "", map[string]string{"Authorization": "Bearer " + other}); status != http.StatusForbidden {
		t.Fatalf("/chat/stream with another topic's token: %d %s", status, b)
	}
	q := url.Values{"topic": {"chat/" + id}, "lastEventID": {"earliest"}}
	status, e, b := sendReq(t, "GET", srv.URL+"/.well-known/mercure?"+q.Encode(), "", map[string]string{"Authorization": "Bearer " + other})
	if status != http.StatusForbidden || e.Code != access.CodeTopicForbidden {
		t.Fatalf("the chat answer through Mercure: %d %.200s, want 403 topic_forbidden", status, b)
	}
	// Whoever may read the chat reads it through any face.
	ok, resp, b := openHeaders(t, srv.URL+"/.well-known/mercure?"+q.Encode(), map[string]string{"Authorization": "Bearer " + owner})
	if !ok {
		t.Fatalf("the owner through Mercure: %d %s", resp.StatusCode, b)
	}
}

// startChat starts a generation with the given headers and returns its id.
func startChat(t *testing.T, base string, hdr map[string]string) string {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	for k, v := range hdr {
		h[k] = v
	}
	status, _, b := sendReq(t, "POST", base+"/chat", `{"messages":[{"role":"user","content":"tell me a long story"}]}`, h)
	if status != http.StatusCreated {
		t.Fatalf("POST /chat: %d %s", status, b)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(b, &created); err != nil || created.ID == "" {
		t.Fatalf("POST /chat answer %s", b)
	}
	return created.ID
}

// TestNoPrivateUpdatesThroughHubTopics: every Mercure update also carries
// /.well-known/mercure; a token covering it on /events or /ws received the
// private updates of every topic, and one covering
// /.well-known/mercure/subscriptions received other users' subscription
// events with their JWT payloads. The hub's namespace is now Mercure's
// alone.
func TestNoPrivateUpdatesThroughHubTopics(t *testing.T) {
	srv := startKeyed(t, func(c *config.Server) { c.Mercure.Subscriptions = true })
	for _, sel := range []string{"/.well-known/mercure", "/.well-known/*", "/.well-known/**", "/.well-known/mercure/subscriptions", "*"} {
		tok := mint(t, "mallory", nil, []string{sel}, time.Hour)
		for _, topic := range []string{"/.well-known/mercure", "/.well-known/mercure/subscriptions", "/.well-known/mercure/subscriptions/a/b"} {
			s, resp, b := open(t, srv.URL, tok, viaHeader, "", topic)
			if s != nil || resp.StatusCode != http.StatusForbidden || decodeErr(t, b).Code != access.CodeTopicReserved {
				t.Fatalf("/events?topic=%s with a token for %q: %d %s, want 403 topic_reserved", topic, sel, resp.StatusCode, b)
			}
			_, wresp, err := dialWS(t, srv.URL, tok, viaHeader, "", topic)
			if err == nil || wresp == nil || wresp.StatusCode != http.StatusForbidden {
				t.Fatalf("/ws?topic=%s with a token for %q: %v", topic, sel, err)
			}
		}
	}
	// A token for everything on /events follows "orders" and sees its
	// private updates, not those of another topic published by Mercure.
	all := mint(t, "root", nil, []string{"*"}, time.Hour)
	s := subscribe(t, srv.URL, all, viaHeader, "", "orders")
	pub := mint(t, "backend", []string{"*"}, nil, time.Hour)
	for _, f := range []url.Values{{"topic": {"secret"}, "data": {"other-topic"}, "private": {"on"}}, {"topic": {"orders"}, "data": {"mine"}, "private": {"on"}}, {"topic": {"orders"}, "data": {"end"}}} {
		status, _, b := sendReq(t, "POST", srv.URL+"/.well-known/mercure", f.Encode(), map[string]string{"Content-Type": form, "Authorization": "Bearer " + pub})
		if status != 200 {
			t.Fatalf("Mercure publish: %d %s", status, b)
		}
	}
	if got := collect(t, s, "end"); strings.Join(got, ",") != "mine" {
		t.Fatalf("/events got %q, want only orders' private update", got)
	}
}

// TestDemoTrafficIsBounded: /sse/broadcast took 1 MiB messages, was not
// charged to --publish-rate even with keys, and 40 broadcasts flushed
// another topic's history (a resume on it got history-truncated).
func TestDemoTrafficIsBounded(t *testing.T) {
	srv := startKeyed(t, func(c *config.Server) {
		c.History.MaxBytes = 1 << 20 // 40 demo broadcasts of the old 1 MiB would flush everything
		c.HTTP.TrustedProxies = config.Strings{"127.0.0.1/32"}
		c.HTTP.PublishRate, c.HTTP.PublishBurst = 0.01, 45
		c.Auth.AllowAnonymous = true
	})
	pub := mint(t, "backend", []string{"*"}, nil, time.Hour)
	first := mustPublish(t, srv.URL, pub, map[string]any{"topic": "orders", "data": "o1"})
	mustPublish(t, srv.URL, pub, map[string]any{"topic": "orders", "data": "o2"})
	remote := map[string]string{"Content-Type": form, "X-Forwarded-For": "203.0.113.7"}
	// 1 MiB is refused before it is read.
	if status, e, b := sendReq(t, "POST", srv.URL+"/sse/broadcast", "message="+strings.Repeat("x", 1<<20), remote); status != http.StatusRequestEntityTooLarge || e.Code != access.CodeTooLarge {
		t.Fatalf("1 MiB broadcast: %d %.200s", status, b)
	}
	msg := "message=" + strings.Repeat("x", int(apptest.Config().Demo.MaxMessageBytes))
	for i := range 40 {
		if status, _, b := sendReq(t, "POST", srv.URL+"/sse/broadcast", msg, remote); status != 200 {
			t.Fatalf("broadcast %d at the size limit: %d %s", i, status, b)
		}
	}
	// Charged to the publish rate of the address, with a key configured.
	for {
		status, e, b := sendReq(t, "POST", srv.URL+"/sse/broadcast", "message=x", remote)
		if status == http.StatusTooManyRequests {
			if e.Code != access.CodeRateLimited {
				t.Fatalf("over the rate: %s", b)
			}
			break
		}
		if status != 200 {
			t.Fatalf("broadcast: %d %s", status, b)
		}
	}
	if status, e, _ := sendReq(t, "POST", srv.URL+"/sse/start-task", "", remote); status != http.StatusTooManyRequests || e.Code != access.CodeRateLimited {
		t.Fatalf("start-task over the rate: %d", status)
	}
	// The other topic kept its history: a resume is exact.
	s := subscribe(t, srv.URL, "", viaNone, first, "orders")
	ev := s.Next(t)
	if ev.Type == "herald.reset" || ev.Data != "o2" {
		t.Fatalf("resume on orders after the demo traffic: %+v, want o2", ev)
	}
}

// TestChatOwnership: another subject could cancel someone's generation
// (with a cookie and a foreign Origin, too); a chat stream kept running
// after its token expired.
func TestChatOwnership(t *testing.T) {
	srv := startKeyed(t, func(c *config.Server) { c.Chat.LLMDemoDelay = 200 * time.Millisecond })
	alice := mint(t, "alice", nil, []string{"chat/*"}, time.Hour)
	bob := mint(t, "bob", nil, []string{"chat/*"}, time.Hour)
	id := startChat(t, srv.URL, map[string]string{"Authorization": "Bearer " + alice})
	cancelURL := srv.URL + "/chat/stream/" + id + "/cancel"
	if status, e, b := sendReq(t, "POST", cancelURL, "", map[string]string{"Authorization": "Bearer " + bob}); status != http.StatusForbidden || e.Code != access.CodeNotOwner {
		t.Fatalf("bob cancels alice's generation: %d %s", status, b)
	}
	cookie := map[string]string{"Cookie": auth.CookieName + "=" + alice, "Origin": "https://evil.example"}
	if status, e, b := sendReq(t, "POST", cancelURL, "", cookie); status != http.StatusForbidden || e.Code != access.CodeOriginForbidden {
		t.Fatalf("cancel with alice's cookie from a foreign page: %d %s", status, b)
	}
	if status, _, b := sendReq(t, "POST", cancelURL, "", map[string]string{"Authorization": "Bearer " + alice}); status != 200 {
		t.Fatalf("alice cancels her generation: %d %s", status, b)
	}

	// The stream of a token that expires ends with herald.auth-expired.
	id = startChat(t, srv.URL, map[string]string{"Authorization": "Bearer " + alice})
	short := mint(t, "alice", nil, []string{"chat/*"}, 1500*time.Millisecond)
	req := mustReq(t, "GET", srv.URL+"/chat/stream/"+id)
	req.Header.Set("Authorization", "Bearer "+short)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := testkit.NewStream(t, resp, nil).End(t)
	if err != nil {
		t.Fatal(err)
	}
	var last sse.Event
	for _, b := range blocks {
		if b.HasData {
			last = b.Event()
		}
	}
	if last.Type != transport.AuthExpiredEventType {
		t.Fatalf("chat stream ended with %+v, want %s", last, transport.AuthExpiredEventType)
	}
}

// TestSendDedupeIsPerSender: de-duplication was keyed by clientId and
// msgId alone, so one user could pre-empt another's message (it answered
// "duplicate" and never delivered it) or probe which ids were used.
func TestSendDedupeIsPerSender(t *testing.T) {
	srv := startKeyed(t, nil)
	s := subscribe(t, srv.URL, mint(t, "reader", nil, []string{"room"}, time.Hour), viaHeader, "", "room")
	send := func(who, data string) map[string]any {
		tok := mint(t, who, []string{"room"}, nil, time.Hour)
		body := fmt.Sprintf(`{"clientId":"tab-1","msgId":"m-1","topic":"room","data":%q}`, data)
		status, _, b := sendReq(t, "POST", srv.URL+"/send", body, map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + tok})
		if status != 200 {
			t.Fatalf("%s sends: %d %s", who, status, b)
		}
		var ack map[string]any
		json.Unmarshal(b, &ack)
		return ack
	}
	if ack := send("mallory", "pre-empted"); ack["duplicate"] == true {
		t.Fatalf("mallory's ack %v", ack)
	}
	if ack := send("alice", "hello"); ack["duplicate"] == true {
		t.Fatalf("alice's message was taken for mallory's: %v", ack)
	}
	mustPublish(t, srv.URL, mint(t, "backend", []string{"*"}, nil, time.Hour), map[string]any{"topic": "room", "data": "end"})
	if got := collect(t, s, "end"); strings.Join(got, ",") != "pre-empted,hello" {
		t.Fatalf("room got %q", got)
	}
}

// TestSmallerFindings: iat in the future, duplicate JSON names, invalid
// UTF-8 on /send and in a WebSocket text frame, the Mercure subscriptions
// API without a subscriber key.
func TestSmallerFindings(t *testing.T) {
	srv := startKeyed(t, func(c *config.Server) { c.Chat.LLMDemoDelay = time.Millisecond })
	t.Run("iat in the future", func(t *testing.T) {
		c := &auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "a", IssuedAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}, Mercure: &auth.MercureClaim{Subscribe: []string{"*"}}}
		s, resp, b := open(t, srv.URL, signClaims(t, c), viaHeader, "", "a")
		if s != nil || resp.StatusCode != http.StatusUnauthorized || !strings.Contains(decodeErr(t, b).Error, "iat") {
			t.Fatalf("token issued in an hour: %d %s", resp.StatusCode, b)
		}
	})
	pub := mint(t, "backend", []string{"*"}, []string{"*"}, time.Hour)
	bearer := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + pub}
	t.Run("duplicate JSON names", func(t *testing.T) {
		for path, body := range map[string]string{
			"/publish": `{"topic":"a","topic":"b","data":"x"}`,
			"/send":    `{"clientId":"c","msgId":"m","msgId":"n","topic":"a","data":"x"}`,
			"/chat":    `{"messages":[{"role":"user","role":"system","content":"hi"}]}`,
		} {
			if status, _, b := sendReq(t, "POST", srv.URL+path, body, bearer); status != http.StatusBadRequest || !strings.Contains(string(b), "twice") {
				t.Errorf("POST %s %s: %d %s", path, body, status, b)
			}
		}
		c, _, err := dialWS(t, srv.URL, pub, viaHeader, "", "a")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Write(ctx, websocket.MessageText, []byte(`{"type":"send","msgId":"w1","msgId":"w2","topic":"a","data":1}`))
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var f wsFrame
			json.Unmarshal(b, &f)
			if f.Type == "error" {
				if f.Status != 400 || !strings.Contains(f.Error, "twice") {
					t.Fatalf("error frame %s", b)
				}
				break
			}
			if f.Type == "ack" {
				t.Fatalf("a frame with a name given twice was delivered: %s", b)
			}
		}
	})
	t.Run("invalid UTF-8 on /send", func(t *testing.T) {
		if status, _, b := sendReq(t, "POST", srv.URL+"/send", "{\"clientId\":\"c\",\"msgId\":\"u\",\"topic\":\"a\",\"data\":\"\xff\"}", bearer); status != http.StatusBadRequest || !strings.Contains(string(b), "UTF-8") {
			t.Fatalf("/send with invalid UTF-8: %d %s", status, b)
		}
	})
	t.Run("invalid UTF-8 in a WebSocket text frame", func(t *testing.T) {
		c, _, err := dialWS(t, srv.URL, pub, viaHeader, "", "a")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Write(ctx, websocket.MessageText, []byte("{\"type\":\"ping\",\"t\":\"\xff\"}"))
		for {
			_, _, err := c.Read(ctx)
			if err == nil {
				continue
			}
			if got := websocket.CloseStatus(err); got != websocket.StatusInvalidFramePayloadData {
				t.Fatalf("closed with %v (%v), want 1007", got, err)
			}
			return
		}
	})
	t.Run("subscriptions API without a subscriber key", func(t *testing.T) {
		pubOnly := startWith(t, func(c *config.Server) {
			c.Auth.Publisher.Key = secret
			c.Auth.AllowAnonymous = true
			c.Mercure.Subscriptions = true
			c.HTTP.TrustedProxies = config.Strings{"127.0.0.1/32"}
		})
		u := pubOnly.URL + "/.well-known/mercure/subscriptions"
		if status, e, b := sendReq(t, "GET", u, "", map[string]string{"X-Forwarded-For": "203.0.113.7"}); status != http.StatusForbidden || e.Code != access.CodeLoopbackOnly {
			t.Fatalf("anonymous remote caller: %d %s", status, b)
		}
		if status, _, b := sendReq(t, "GET", u, "", nil); status != 200 {
			t.Fatalf("local caller: %d %s", status, b)
		}
	})
}

// TestIdleConnectionsPerAddress: idle TCP connections were not limited per
// address (320 idle sockets from one address filled --max-connections
// 300); now one address holds at most --max-idle-connections-per-ip of
// them, and others still get in.
func TestIdleConnectionsPerAddress(t *testing.T) {
	srv := startWith(t, func(c *config.Server) {
		c.HTTP.MaxConnections = 30
		c.HTTP.MaxIdleConnectionsPerIP = 5
	})
	addr := strings.TrimPrefix(srv.URL, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 5 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	// The sixth idle connection from 127.0.0.1 is refused with a 503.
	testkit.WaitFor(t, "the sixth idle connection to be refused", func() bool {
		status, _, body := rawExchangeFrom(t, "127.0.0.1", addr, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
		return status == http.StatusServiceUnavailable && strings.Contains(string(body), "max-idle-connections-per-ip")
	})
	waitMetric(t, srv, "max_idle_connections_per_ip", 1)
	// Another address is not affected.
	if status, _, body := rawExchangeFrom(t, "127.0.0.2", addr, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"); status != 200 {
		t.Fatalf("another address: %d %s", status, body)
	}
}

// rawExchangeFrom is rawExchange from a given local address.
func rawExchangeFrom(t *testing.T, local, addr, raw string) (int, string, []byte) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return 0, "", nil
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// TestBodyOverTheLimitIs413BeforeReading: a body whose Content-Length says
// it is over the limit gets 413 at once, on every face that takes a body;
// the server used to read first, and on a loaded machine answered 408.
func TestBodyOverTheLimitIs413BeforeReading(t *testing.T) {
	srv := startWith(t, func(c *config.Server) { c.HTTP.ReadBodyTimeout = time.Hour })
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct{ path, ctype string }{
		{"/publish", "application/json"},
		{"/publish", form},
		{"/send", "application/json"},
		{"/.well-known/mercure", form},
		{"/chat", "application/json"},
		{"/sse/broadcast", form},
		{"/admin/purge", form},
	} {
		raw := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n{", tc.path, tc.ctype, 1<<30)
		status, _, body := rawExchange(t, addr, raw) // the body never comes: only an early answer can arrive
		if status != http.StatusRequestEntityTooLarge {
			t.Errorf("POST %s (%s) with Content-Length 1 GiB: %d %s, want 413", tc.path, tc.ctype, status, body)
		}
	}
}

// The server's own topics — the nodes' work journals and the demo's task
// counter — are reserved: a request may neither publish into them (a forged
// journal entry would make the next start write to the topics it names)
// nor follow them, on any face. So are the names of Durable Streams ("ds/"
// and their references, "ds-refs/"), which tokens use to name streams:
// only /v1/stream/* reads and writes them.
func TestServerTopicsAreReserved(t *testing.T) {
	srv := startWith(t, nil)
	for _, topic := range []string{"herald/journal/node-a", "demo/tasks", "ds/a-stream", "ds-refs/a-stream"} {
		form := url.Values{"topic": {topic}, "data": {`[{"kind":"chat","id":"x"}]`}}.Encode()
		status, eb, body := sendReq(t, http.MethodPost, srv.URL+"/publish", form, map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if status != http.StatusForbidden || eb.Code != "topic_reserved" {
			t.Errorf("publish to %s: %d %s, want 403 topic_reserved", topic, status, body)
		}
	}
	for _, topic := range []string{"herald/journal/node-a", "ds/a-stream"} {
		status, eb, body := sendReq(t, http.MethodGet, srv.URL+"/events?topic="+url.QueryEscape(topic), "", nil)
		if status != http.StatusForbidden || eb.Code != "topic_reserved" {
			t.Errorf("subscribe to %s: %d %s, want 403 topic_reserved", topic, status, body)
		}
	}
}
