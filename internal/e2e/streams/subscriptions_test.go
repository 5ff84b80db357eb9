package streams_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testkit"
)

// hook is a webhook receiver on loopback: each request's decoded body goes
// to got; it answers answer, or, with hold, holds the request until the
// sender goes away.
type hook struct {
	url string
	got chan wake
}

// wake is a webhook request's body.
type wake struct {
	Generation    int64  `json:"generation"`
	WakeID        string `json:"wake_id"`
	CallbackURL   string `json:"callback_url"`
	CallbackToken string `json:"callback_token"`
	Streams       []struct {
		Path       string `json:"path"`
		TailOffset string `json:"tail_offset"`
	} `json:"streams"`
}

func newHook(t *testing.T, answer string, hold func(wake) bool) *hook {
	h := &hook{got: make(chan wake, 64)}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var wk wake
		if err := json.Unmarshal(b, &wk); err != nil {
			t.Errorf("webhook body %q: %v", b, err)
		}
		h.got <- wk
		if hold != nil && hold(wk) {
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	}))
	t.Cleanup(func() { ts.CloseClientConnections(); ts.Close() })
	h.url = ts.URL + "/hook"
	return h
}

func (h *hook) next(t *testing.T, within time.Duration) wake {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case w := <-h.got:
		return w
	case <-timer.C:
		t.Fatalf("no webhook request within %s", within)
		return wake{}
	}
}

// TestSubscriptionsAcrossNodes: two herald processes on one broker. A
// webhook subscription made on node A is matched by a write on node B and
// delivered exactly once; a node killed while it holds a delivery's lease
// is taken over: the other node delivers the wake again once the lease
// (lease_ttl_ms) has run out, and the consumer's callback on it succeeds.
func TestSubscriptionsAcrossNodes(t *testing.T) {
	for _, bc := range sharedBrokers() {
		t.Run(bc.name, func(t *testing.T) {
			flags := append(bc.flags(t), "--ds-webhook-allow", "127.0.0.0/8")
			a := startHerald(t, flags...)
			b := startHerald(t, flags...)
			sub := func(n *node, id string) string { return n.URL + "/v1/stream/__ds/subscriptions/" + id }
			create := func(n *node, id, url string) {
				t.Helper()
				body := fmt.Sprintf(`{"type":"webhook","pattern":"events/*","webhook":{"url":%q},"lease_ttl_ms":1000}`, url)
				if st, _, out := call("PUT", sub(n, id), body, "Content-Type: application/json"); st != 201 {
					t.Fatalf("create %s: %d %s", id, st, out)
				}
			}
			acked := func(n *node, id, path, offset string) bool {
				_, _, out := call("GET", sub(n, id), "")
				return strings.Contains(out, fmt.Sprintf(`"acked_offset":%q,"link_type":"glob","path":%q`, offset, path))
			}

			// Exactly once: made on A, written on B.
			done := newHook(t, `{"done":true}`, nil)
			create(a, "once", done.url)
			if st, _, out := call("PUT", b.URL+"/v1/stream/events/one", `{"n":1}`, "Content-Type: application/json"); st != 201 {
				t.Fatalf("create the stream on B: %d %s", st, out)
			}
			w1 := done.next(t, 20*time.Second)
			if w1.Generation != 1 || len(w1.Streams) != 1 || w1.Streams[0].Path != "events/one" {
				t.Fatalf("first delivery %+v", w1)
			}
			if !testkit.Within(20*time.Second, func() bool { return acked(b, "once", "events/one", w1.Streams[0].TailOffset) }) {
				_, _, out := call("GET", sub(b, "once"), "")
				t.Fatalf("the done answer did not acknowledge %s: %s", w1.Streams[0].TailOffset, out)
			}
			// The next write's delivery is generation 2: a duplicate of
			// the first, by either node, would have come first.
			call("POST", a.URL+"/v1/stream/events/one", `{"n":2}`, "Content-Type: application/json")
			if w2 := done.next(t, 20*time.Second); w2.Generation != 2 {
				t.Fatalf("after generation 1, a delivery of generation %d (a duplicate?)", w2.Generation)
			}
			call("DELETE", sub(a, "once"), "")

			// Lease takeover: the delivering node dies holding the wake.
			// Only A runs while the wake is made, so A holds it; the
			// receiver holds A's request until A is gone.
			b.stop()
			held := newHook(t, `{}`, func(w wake) bool { return w.Generation == 1 })
			create(a, "takeover", held.url)
			if st, _, out := call("PUT", a.URL+"/v1/stream/events/two", `{"n":1}`, "Content-Type: application/json"); st != 201 {
				t.Fatalf("create the stream on A: %d %s", st, out)
			}
			first := held.next(t, 20*time.Second)
			_ = a.cmd.Process.Signal(syscall.SIGKILL)
			<-a.done
			killed := time.Now()
			c := startHerald(t, flags...)
			again := held.next(t, 30*time.Second)
			t.Logf("redelivered by the other node %s after A was killed (lease 1 s)", time.Since(killed).Round(time.Millisecond))
			if again.Generation != first.Generation+1 || again.WakeID == first.WakeID {
				t.Fatalf("redelivery %+v after %+v", again, first)
			}
			ack := fmt.Sprintf(`{"wake_id":%q,"generation":%d,"acks":[{"stream":"events/two","offset":%q}],"done":true}`,
				again.WakeID, again.Generation, again.Streams[0].TailOffset)
			cb := strings.Replace(again.CallbackURL, a.URL, c.URL, 1) // the callback URL names the node the subscription was made on
			if st, _, out := call("POST", cb, ack, "Content-Type: application/json", "Authorization: Bearer "+again.CallbackToken); st != 200 {
				t.Fatalf("callback on the surviving node: %d %s", st, out)
			}
			stale := strings.Replace(strings.Replace(ack, again.WakeID, first.WakeID, 1), fmt.Sprintf(`"generation":%d`, again.Generation), fmt.Sprintf(`"generation":%d`, first.Generation), 1)
			if st, _, out := call("POST", cb, stale, "Content-Type: application/json", "Authorization: Bearer "+first.CallbackToken); st != 409 || !strings.Contains(out, "FENCED") {
				t.Fatalf("the dead node's wake: %d %s, want 409 FENCED", st, out)
			}
		})
	}
}
