package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/browsertest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/pubsub"
)

// page is the hybrid example page (/hybrid) in a real headless Chromium.
type page struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []string
}

func openPage(t *testing.T, base, query string) *page {
	t.Helper()
	ctx := browsertest.New(t, 3*time.Minute)
	p := &page{t: t, ctx: ctx}
	if err := chromedp.Listen(ctx, func(ev any) {
		var line string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			line = fmt.Sprintf("console.%s %s", ev.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			line = fmt.Sprintf("exception %s at %s:%d", d.Text, d.URL, d.LineNumber)
			if d.Exception != nil {
				line += " " + d.Exception.Description
			}
		default:
			return
		}
		p.mu.Lock()
		p.console = append(p.console, line)
		p.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Logf("browser console:\n%s", strings.Join(p.console, "\n"))
		}
	})
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/hybrid?"+query)); err != nil {
		t.Fatal(err)
	}
	return p
}

func eval[T any](p *page, js string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitFor polls the page until the JavaScript expression is true.
func (p *page) waitFor(what, expr string, timeout time.Duration) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(20*time.Millisecond)))
	if err != nil {
		state := eval[string](p, `JSON.stringify(window.hybrid ? {transport: hybrid.herald.transport, state: hybrid.herald.state, transports: hybrid.transports, network: hybrid.herald.network, received: hybrid.received.length, pending: hybrid.herald.pendingSends} : "no page state")`)
		p.t.Fatalf("waiting for %s (%s): %v\npage: %s", what, expr, err, state)
	}
}

func (p *page) waitTransport(want string, timeout time.Duration) {
	p.t.Helper()
	p.waitFor("transport "+want, fmt.Sprintf(`window.hybrid !== undefined && hybrid.herald.transport === %q && document.getElementById("transport").dataset.transport === %q`, want, want), timeout)
}

// setLatency emulates a network with the given latency (DevTools network
// conditions: every request waits that long for its response headers).
func (p *page) setLatency(ms float64) {
	p.t.Helper()
	cond := &network.Conditions{Latency: ms, DownloadThroughput: -1, UploadThroughput: -1}
	if _, err := chromedp.Call(p.ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		MatchedNetworkConditions: []*network.Conditions{cond},
	}); err != nil {
		p.t.Fatalf("emulate latency %v ms: %v", ms, err)
	}
}

// startSending makes the page send a message ("s1", "s2", ...) to topic
// every interval with herald.send, recording each outcome.
func (p *page) startSending(topic string, interval time.Duration) {
	p.t.Helper()
	eval[chromedp.Void](p, fmt.Sprintf(`(() => {
		const s = { n: 0, results: [] };
		s.timer = setInterval(() => {
			const n = ++s.n;
			hybrid.herald.send("s" + n, { topic: %q }).then(
				(a) => s.results.push({ n, id: a.id, duplicate: a.duplicate }),
				(e) => s.results.push({ n, error: String(e) }));
		}, %d);
		window.sender = s;
	})()`, topic, interval.Milliseconds()))
}

// stopSending stops the sender and returns how many messages it sent.
func (p *page) stopSending() int {
	p.t.Helper()
	return eval[int](p, `clearInterval(sender.timer), sender.n`)
}

type sendResult struct {
	N         int    `json:"n"`
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
	Error     string `json:"error"`
}

type received struct {
	ID        string `json:"id"`
	Data      string `json:"data"`
	Transport string `json:"transport"`
}

func publish(t *testing.T, base, topic, data string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"topic": topic, "data": data})
	resp, err := http.Post(base+"/publish", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Error(err)
		return ""
	}
	defer resp.Body.Close()
	var r struct{ ID, Error string }
	json.NewDecoder(resp.Body).Decode(&r)
	if resp.StatusCode != 200 {
		t.Errorf("publish: %d %s", resp.StatusCode, r.Error)
	}
	return r.ID
}

// publisher publishes "1", "2", ... to topic until stopped.
type publisher struct {
	n    atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func startPublisher(t *testing.T, base, topic string, interval time.Duration) *publisher {
	p := &publisher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			n := p.n.Add(1)
			publish(t, base, topic, strconv.FormatInt(n, 10))
		}
	}()
	return p
}

func (p *publisher) Stop() int {
	close(p.stop)
	<-p.done
	return int(p.n.Load())
}

// checkSequence checks that the page received "1".."n" exactly once, in
// order, and returns how many came over each transport.
func checkSequence(t *testing.T, got []received, n int) map[string]int {
	t.Helper()
	by := map[string]int{}
	if len(got) != n {
		t.Errorf("page received %d events, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for i, r := range got {
		if seen[r.ID] {
			t.Errorf("event %s (%s) shown twice", r.ID, r.Data)
		}
		seen[r.ID] = true
		if want := strconv.Itoa(i + 1); r.Data != want {
			t.Fatalf("event %d is %q (id %s, over %s), want %q: lost, reordered or duplicated", i, r.Data, r.ID, r.Transport, want)
		}
		by[r.Transport]++
	}
	return by
}

// checkSent checks that every message the page sent was acknowledged and is
// in the topic's history exactly once, in the order sent.
func checkSent(t *testing.T, srv *apptest.Server, p *page, topic string, n int) {
	t.Helper()
	p.waitFor("every send to be acknowledged", fmt.Sprintf("sender.results.length === %d", n), 60*time.Second)
	results := eval[[]sendResult](p, `sender.results`)
	for _, r := range results {
		if r.Error != "" || r.ID == "" {
			t.Errorf("send s%d: %+v", r.N, r)
		}
	}
	b := srv.App.Hub().Broker()
	snap, err := b.Read(context.Background(), pubsub.Query{Topics: []string{topic}, After: &pubsub.Position{Epoch: b.Epoch()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Events) != n {
		t.Errorf("history of %s has %d messages, want %d (each sent message once)", topic, len(snap.Events), n)
	}
	for i, m := range snap.Events {
		if want := "s" + strconv.Itoa(i+1); m.Data != want {
			t.Fatalf("sent message %d in history is %q, want %q", i, m.Data, want)
		}
	}
}

const fast = "rttThreshold=300&probeInterval=250&probeSamples=3&probeTimeout=2000&reconnectDelay=100&connectTimeout=5000&ackTimeout=5000"

// TestHybridSwitchesLosslessly: with normal latency the page uses WebSocket;
// with emulated latency above the threshold it switches to SSE; when the
// network recovers it switches back; twice. Events published throughout
// arrive exactly once, in order, and messages sent throughout are each
// delivered once, in order. On each transport the server also cuts the
// connection once, so that the page must resume from the last id it saw.
func TestHybridSwitchesLosslessly(t *testing.T) {
	srv := apptest.Start(t, nil)
	p := openPage(t, srv.URL, "topic=feed&"+fast)
	p.waitTransport("websocket", 20*time.Second)
	if first := eval[string](p, `hybrid.transports[0]`); first != "websocket" {
		t.Fatalf("first transport %q on loopback, want websocket", first)
	}

	pub := startPublisher(t, srv.URL, "feed", 15*time.Millisecond)
	p.startSending("feed-sent", 40*time.Millisecond)
	// kick cuts every connection on the server side: the page reconnects
	// on the same transport and must resume from the last id it saw.
	kick := func() {
		time.Sleep(300 * time.Millisecond)
		if srv.App.Hub().Disconnect("") == 0 {
			t.Error("no subscription to disconnect")
		}
		time.Sleep(500 * time.Millisecond)
	}
	for cycle := range 2 {
		kick()
		p.setLatency(600)
		p.waitTransport("sse", 30*time.Second)
		if rtt := eval[float64](p, `hybrid.herald.network.rtt`); rtt < 300 {
			t.Fatalf("cycle %d: on SSE with a probed rtt of %v ms", cycle, rtt)
		}
		kick()
		p.setLatency(0)
		p.waitTransport("websocket", 30*time.Second)
	}
	time.Sleep(300 * time.Millisecond)
	n := pub.Stop()
	sent := p.stopSending()

	p.waitFor("every event", fmt.Sprintf("hybrid.received.length >= %d", n), 30*time.Second)
	time.Sleep(200 * time.Millisecond) // a duplicate would come now
	by := checkSequence(t, eval[[]received](p, `hybrid.received`), n)
	if by["sse"] == 0 || by["websocket"] == 0 {
		t.Errorf("events by transport %v: want some over each", by)
	}
	// Changes alternate by construction; a loaded machine may add a
	// round trip if a probe of loopback is ever slow.
	if got := eval[[]string](p, `hybrid.transports`); len(got) < 5 || got[0] != "websocket" || got[len(got)-1] != "websocket" {
		t.Errorf("transports %v, want websocket, sse, websocket, sse, websocket", got)
	}
	checkSent(t, srv, p, "feed-sent", sent)
	t.Logf("%d events (%v), %d messages sent", n, by, sent)
}

// TestHybridFallsBackWhenUpgradeIsBlocked: the server refuses WebSocket
// upgrades (--ws-disable); on a good network the page falls back to SSE and
// still receives and sends.
func TestHybridFallsBackWhenUpgradeIsBlocked(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) { c.WS.Disable = true })
	p := openPage(t, srv.URL, "topic=blocked&"+fast)
	p.waitTransport("sse", 20*time.Second)
	p.waitFor("a good network", `!hybrid.herald.network.weak && hybrid.herald.transport === "sse"`, 20*time.Second)
	p.waitFor("the fallback to be reported", `hybrid.errors.some((e) => e.transport === "websocket")`, 20*time.Second)
	p.startSending("blocked-sent", 30*time.Millisecond)
	for i := 1; i <= 20; i++ {
		publish(t, srv.URL, "blocked", strconv.Itoa(i))
	}
	p.waitFor("the events", "hybrid.received.length >= 20", 20*time.Second)
	time.Sleep(300 * time.Millisecond)
	sent := p.stopSending()
	checkSequence(t, eval[[]received](p, `hybrid.received`), 20)
	checkSent(t, srv, p, "blocked-sent", sent)
	if got := eval[[]string](p, `hybrid.transports`); strings.Join(got, ",") != "sse" {
		t.Errorf("transports %v, want only sse (the upgrade is always refused)", got)
	}
}

// TestHybridTriesWebSocketAgain: a proxy in front of the server blocks
// upgrades; the page falls back to SSE, and once the proxy lets upgrades
// through it moves to WebSocket on its next try, losing nothing.
func TestHybridTriesWebSocketAgain(t *testing.T) {
	srv := apptest.Start(t, nil)
	target, _ := url.Parse(srv.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	// A transparent proxy: without X-Forwarded-For the page's sends come
	// from loopback, which development mode lets publish (a forwarded
	// client is remote: docs/security.md).
	direct := rp.Director
	rp.Director = func(r *http.Request) { direct(r); r.Header["X-Forwarded-For"] = nil }
	var blocked atomic.Bool
	blocked.Store(true)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if blocked.Load() && strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "upgrades are blocked here", http.StatusForbidden)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)

	p := openPage(t, proxy.URL, "topic=proxied&wsRetryInterval=1500&"+fast)
	p.waitTransport("sse", 20*time.Second)
	pub := startPublisher(t, srv.URL, "proxied", 20*time.Millisecond)
	p.startSending("proxied-sent", 40*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	blocked.Store(false)
	p.waitTransport("websocket", 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	n := pub.Stop()
	sent := p.stopSending()
	p.waitFor("every event", fmt.Sprintf("hybrid.received.length >= %d", n), 20*time.Second)
	time.Sleep(200 * time.Millisecond)
	checkSequence(t, eval[[]received](p, `hybrid.received`), n)
	checkSent(t, srv, p, "proxied-sent", sent)
	if got := eval[[]string](p, `hybrid.transports`); len(got) < 2 || got[0] != "sse" || got[len(got)-1] != "websocket" {
		t.Errorf("transports %v, want sse then websocket", got)
	}
}

// TestHybridPageControls: what the README tells a new user to do on the
// page works: publish, send, and simulate a weak network.
func TestHybridPageControls(t *testing.T) {
	srv := apptest.Start(t, nil)
	p := openPage(t, srv.URL, "topic=ui&probeInterval=250&probeSamples=3&reconnectDelay=100")
	p.waitTransport("websocket", 20*time.Second)
	if err := chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS("#publish-form button"))); err != nil {
		t.Fatal(err)
	}
	p.waitFor("the published event", `hybrid.received.length === 1 && hybrid.received[0].data.startsWith("event #1")`, 10*time.Second)
	if err := chromedp.Do(p.ctx,
		chromedp.SendKeys(chromedp.ID("send-text"), "hello from the page"),
		chromedp.Click(chromedp.CSS("#send-form button")),
	); err != nil {
		t.Fatal(err)
	}
	p.waitFor("the sent message", `hybrid.received.some((m) => m.data === "hello from the page") && document.getElementById("sent").textContent.includes("delivered as")`, 10*time.Second)

	if err := chromedp.Do(p.ctx, chromedp.Click(chromedp.ID("weaken"))); err != nil {
		t.Fatal(err)
	}
	p.waitTransport("sse", 10*time.Second)
	p.waitFor("the badge", `document.getElementById("transport").textContent === "SSE" && document.getElementById("weak").textContent === "weak"`, 5*time.Second)
	if err := chromedp.Do(p.ctx, chromedp.Click(chromedp.ID("weaken"))); err != nil {
		t.Fatal(err)
	}
	p.waitTransport("websocket", 10*time.Second)
	if got := eval[string](p, `document.getElementById("transport").textContent`); got != "WebSocket" {
		t.Fatalf("badge %q", got)
	}
}
