package dssub_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/dssub"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
)

const subs = "/v1/stream/__ds/subscriptions/"

func webhookBody(url, pattern string, lease int) string {
	return fmt.Sprintf(`{"type":"webhook","pattern":%q,"webhook":{"url":%q},"lease_ttl_ms":%d}`, pattern, url, lease)
}

func TestCreateValidation(t *testing.T) {
	n := newNode(t, newBroker(t))
	cases := []struct {
		name, id, body, code string
	}{
		{"bad JSON", "s1", `{"type":`, "INVALID_REQUEST"},
		{"not an object", "s1", `[1]`, "INVALID_REQUEST"},
		{"unknown field", "s1", `{"type":"webhook","pattern":"a/*","webhook":{"url":"https://example.com/h"},"colour":1}`, "INVALID_REQUEST"},
		{"unknown type", "s1", `{"type":"carrier-pigeon","pattern":"a/*"}`, "INVALID_REQUEST"},
		{"no type", "s1", `{"pattern":"a/*","webhook":{"url":"https://example.com/h"}}`, "INVALID_REQUEST"},
		{"bad pattern", "s1", `{"type":"webhook","pattern":"a/[","webhook":{"url":"https://example.com/h"}}`, "INVALID_REQUEST"},
		{"empty pattern segment", "s1", `{"type":"webhook","pattern":"a//b","webhook":{"url":"https://example.com/h"}}`, "INVALID_REQUEST"},
		{"no pattern nor streams", "s1", `{"type":"webhook","webhook":{"url":"https://example.com/h"}}`, "INVALID_REQUEST"},
		{"reserved stream", "s1", `{"type":"webhook","streams":["__ds/x"],"webhook":{"url":"https://example.com/h"}}`, "INVALID_REQUEST"},
		{"no webhook url", "s1", `{"type":"webhook","pattern":"a/*"}`, "INVALID_REQUEST"},
		{"no wake stream", "s1", `{"type":"pull-wake","pattern":"a/*"}`, "INVALID_REQUEST"},
		{"lease too short", "s1", webhookBody("https://example.com/h", "a/*", 999), "INVALID_REQUEST"},
		{"lease too long", "s1", webhookBody("https://example.com/h", "a/*", 600001), "INVALID_REQUEST"},
		{"lease not an integer", "s1", `{"type":"webhook","pattern":"a/*","webhook":{"url":"https://example.com/h"},"lease_ttl_ms":1500.5}`, "INVALID_REQUEST"},
		{"bad id", "-x", webhookBody("https://example.com/h", "a/*", 1000), "INVALID_REQUEST"},
		{"private address", "s1", webhookBody("http://10.0.0.1/hook", "a/*", 1000), "WEBHOOK_URL_REJECTED"},
		{"link-local metadata address", "s1", webhookBody("http://169.254.169.254/latest", "a/*", 1000), "WEBHOOK_URL_REJECTED"},
		{"IPv6 loopback", "s1", webhookBody("http://[::1]:8080/hook", "a/*", 1000), "WEBHOOK_URL_REJECTED"},
		{"IPv4-mapped private", "s1", webhookBody("http://[::ffff:192.168.1.1]/hook", "a/*", 1000), "WEBHOOK_URL_REJECTED"},
		{"unspecified", "s1", webhookBody("http://0.0.0.0/hook", "a/*", 1000), "WEBHOOK_URL_REJECTED"},
		{"localhost", "s1", webhookBody("http://localhost:9/hook", "a/*", 1000), ""}, // allowed: 127.0.0.0/8 is
		{"scheme", "s1", webhookBody("ftp://example.com/hook", "a/*", 1000), "WEBHOOK_URL_REJECTED"},
		{"not absolute", "s1", webhookBody("/hook", "a/*", 1000), "WEBHOOK_URL_REJECTED"},
		{"credentials", "s1", webhookBody("https://u:p@example.com/hook", "a/*", 1000), "WEBHOOK_URL_REJECTED"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := n.do(t, "PUT", subs+c.id, c.body, jsonCT)
			if c.code == "" {
				if r.status != http.StatusCreated {
					t.Fatalf("PUT: %d %s, want 201", r.status, r.body)
				}
				n.do(t, "DELETE", subs+c.id, "")
				return
			}
			if r.status != http.StatusBadRequest {
				t.Fatalf("PUT: %d %s, want 400", r.status, r.body)
			}
			if got := r.code(t); got != c.code {
				t.Fatalf("code %s, want %s (%s)", got, c.code, r.body)
			}
		})
	}
	// Without the loopback allowance, localhost is refused too.
	strict := newNode(t, newBroker(t), func(o *dssub.Options) { o.URLPolicy.Allow = nil })
	if r := strict.do(t, "PUT", subs+"s2", webhookBody("http://127.0.0.1:9/hook", "a/*", 1000), jsonCT); r.status != 400 || r.code(t) != "WEBHOOK_URL_REJECTED" {
		t.Fatalf("loopback without --ds-webhook-allow: %d %s", r.status, r.body)
	}
	// Other requests validate their bodies too.
	n.do(t, "PUT", subs+"p", `{"type":"pull-wake","pattern":"a/*","wake_stream":"w"}`, jsonCT)
	for _, c := range []struct{ method, path, body string }{
		{"POST", subs + "p/streams", `{"streams":[]}`},
		{"POST", subs + "p/streams", `{"streams":[1]}`},
		{"POST", subs + "p/claim", `{"worker":""}`},
		{"POST", subs + "p/claim", `{"worker":"w","x":1}`},
	} {
		if r := n.do(t, c.method, c.path, c.body, jsonCT); r.status != 400 || r.code(t) != "INVALID_REQUEST" {
			t.Errorf("%s %s %s: %d %s, want 400 INVALID_REQUEST", c.method, c.path, c.body, r.status, r.body)
		}
	}
	if r := n.do(t, "GET", subs+"nosuch", ""); r.status != 404 || r.code(t) != "SUBSCRIPTION_NOT_FOUND" {
		t.Errorf("GET a missing subscription: %d %s", r.status, r.body)
	}
	if r := n.do(t, "PUT", "/v1/stream/__ds/other", "x", "Content-Type: text/plain"); r.status != 404 {
		t.Errorf("PUT under __ds/: %d %s, want 404 (reserved)", r.status, r.body)
	}
}

func TestIdempotentCreate(t *testing.T) {
	n := newNode(t, newBroker(t))
	body := webhookBody("https://example.com/hook", "events/*", 1000)
	if r := n.do(t, "PUT", subs+"a", body, jsonCT); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if r := n.do(t, "PUT", subs+"a", body, jsonCT); r.status != 200 {
		t.Fatalf("again: %d %s", r.status, r.body)
	}
	if r := n.do(t, "PUT", subs+"a", webhookBody("https://example.com/hook", "other/*", 1000), jsonCT); r.status != 409 || r.code(t) != "SUBSCRIPTION_ALREADY_EXISTS" {
		t.Fatalf("another config: %d %s", r.status, r.body)
	}
	if r := n.do(t, "DELETE", subs+"a", ""); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if r := n.do(t, "GET", subs+"a", ""); r.status != 404 {
		t.Fatalf("after delete: %d %s", r.status, r.body)
	}
	if r := n.do(t, "PUT", subs+"a", webhookBody("https://example.com/hook", "other/*", 1000), jsonCT); r.status != 201 {
		t.Fatalf("create again after delete: %d %s", r.status, r.body)
	}
}

var sigRE = regexp.MustCompile(`^t=(\d+),kid=([^,]+),ed25519=([A-Za-z0-9_-]+)$`)

// verify checks a delivery's signature against the JWKS at url with
// crypto/ed25519.
func verify(t *testing.T, jwksURL string, d delivery) {
	t.Helper()
	r := call(t, "GET", jwksURL, "")
	var set struct {
		Keys []struct{ Kty, Crv, Alg, Kid, X string }
	}
	if err := json.Unmarshal([]byte(r.body), &set); err != nil || r.status != 200 {
		t.Fatalf("JWKS: %d %s %v", r.status, r.body, err)
	}
	m := sigRE.FindStringSubmatch(d.signature)
	if m == nil {
		t.Fatalf("signature header %q", d.signature)
	}
	ts, _ := strconv.ParseInt(m[1], 10, 64)
	if d := time.Since(time.Unix(ts, 0)); d < -time.Minute || d > time.Minute {
		t.Fatalf("signature time %d is %s away", ts, d)
	}
	for _, k := range set.Keys {
		if k.Kid != m[2] {
			continue
		}
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || !strings.HasPrefix(k.Kid, "ds_") {
			t.Fatalf("key %+v", k)
		}
		pub, err := base64.RawURLEncoding.DecodeString(k.X)
		sig, err2 := base64.RawURLEncoding.DecodeString(m[3])
		if err != nil || err2 != nil || len(pub) != ed25519.PublicKeySize {
			t.Fatalf("key or signature: %v %v", err, err2)
		}
		if !ed25519.Verify(pub, append([]byte(m[1]+"."), d.raw...), sig) {
			t.Fatal("the signature does not verify")
		}
		tampered := append([]byte(m[1]+"."), d.raw...)
		tampered[len(tampered)-2] ^= 1
		if ed25519.Verify(pub, tampered, sig) {
			t.Fatal("a tampered body verifies")
		}
		return
	}
	t.Fatalf("no key %q in the JWKS %s", m[2], r.body)
}

// acked reports whether the subscription's stream p is acknowledged at
// offset.
func acked(t testing.TB, n *node, id, p, offset string) bool {
	r := n.do(t, "GET", subs+id, "")
	var s struct {
		Streams []struct {
			Path        string
			AckedOffset string `json:"acked_offset"`
		}
	}
	_ = json.Unmarshal([]byte(r.body), &s)
	for _, x := range s.Streams {
		if x.Path == p && x.AckedOffset == offset {
			return true
		}
	}
	return false
}

func TestWebhookSignedAndDone(t *testing.T) {
	n := newNode(t, newBroker(t))
	rcv := newReceiver(t, `{"done":true}`)
	r := n.do(t, "PUT", subs+"w", webhookBody(rcv.url, "events/*", 1000), jsonCT)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if strings.Contains(r.body, "secret") {
		t.Fatalf("the answer shows a secret: %s", r.body)
	}
	signing := r.json(t)["webhook"].(map[string]any)["signing"].(map[string]any)
	if signing["jwks_url"] != n.url+"/v1/stream/__ds/jwks.json" || signing["alg"] != "ed25519" {
		t.Fatalf("signing %v", signing)
	}
	if r := n.do(t, "PUT", "/v1/stream/events/a", `{"n":1}`, jsonCT); r.status != 201 {
		t.Fatalf("create stream: %d %s", r.status, r.body)
	}
	d := rcv.next(t, 10*time.Second)
	verify(t, signing["jwks_url"].(string), d)
	if d.body.SubscriptionID != "w" || d.body.Generation != 1 || d.body.CallbackURL != n.url+subs+"w/callback" || len(d.body.Streams) != 1 ||
		d.body.Streams[0].Path != "events/a" || !d.body.Streams[0].HasPending {
		t.Fatalf("delivery %s", d.raw)
	}
	tail := d.body.Streams[0].TailOffset
	if !testkit.Within(10*time.Second, func() bool { return acked(t, n, "w", "events/a", tail) }) {
		t.Fatalf("done did not acknowledge %s", tail)
	}
	// The next write wakes it again: the next delivery is the next
	// generation (a duplicate of the first would come first).
	n.do(t, "POST", "/v1/stream/events/a", `{"n":2}`, jsonCT)
	if d2 := rcv.next(t, 10*time.Second); d2.body.Generation != 2 || d2.body.WakeID == d.body.WakeID {
		t.Fatalf("second delivery %s", d2.raw)
	}
	// A stream the pattern does not match wakes nothing; a stream matched
	// later is linked then.
	n.do(t, "PUT", "/v1/stream/other/a", `{"n":1}`, jsonCT)
	n.do(t, "PUT", "/v1/stream/events/b", `{"n":1}`, jsonCT)
	d3 := rcv.next(t, 10*time.Second)
	for _, s := range d3.body.Streams {
		if s.Path == "other/a" {
			t.Fatalf("an unmatched stream is linked: %s", d3.raw)
		}
	}
}

// settle posts a callback with token for the wake (gen, wakeID).
func settle(t *testing.T, url, token string, gen int64, wakeID, body string) reply {
	t.Helper()
	if body == "" {
		body = fmt.Sprintf(`{"wake_id":%q,"generation":%d}`, wakeID, gen)
	}
	return call(t, "POST", url, body, jsonCT, "Authorization: Bearer "+token)
}

func TestLeaseExpiryRedeliversAndFences(t *testing.T) {
	n := newNode(t, newBroker(t))
	rcv := newReceiver(t, `{}`) // holds the wake, never calls back
	if r := n.do(t, "PUT", subs+"f", webhookBody(rcv.url, "events/*", 1000), jsonCT); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	n.do(t, "PUT", "/v1/stream/events/x", `{"n":1}`, jsonCT)
	d1 := rcv.next(t, 10*time.Second)
	// The lease (1 s) runs out: the wake is made again and redelivered.
	d2 := rcv.next(t, 10*time.Second)
	if d2.body.Generation != d1.body.Generation+1 || d2.body.WakeID == d1.body.WakeID || d2.body.CallbackToken == d1.body.CallbackToken {
		t.Fatalf("redelivery %s after %s", d2.raw, d1.raw)
	}
	url := d2.body.CallbackURL
	tail := d2.body.Streams[0].TailOffset
	ack := fmt.Sprintf(`{"wake_id":%q,"generation":%d,"acks":[{"stream":"events/x","offset":%q}],"done":true}`, d2.body.WakeID, d2.body.Generation, tail)
	stale := fmt.Sprintf(`{"wake_id":%q,"generation":%d,"acks":[{"stream":"events/x","offset":%q}],"done":true}`, d1.body.WakeID, d1.body.Generation, tail)
	for _, c := range []struct {
		name, token, body string
		status            int
		code              string
	}{
		{"the old wake's token", d1.body.CallbackToken, stale, 409, "FENCED"},
		{"the new token, the old wake", d2.body.CallbackToken, stale, 409, "FENCED"},
		{"a forged token", strings.Replace(d2.body.CallbackToken, ".", ".x", 1), ack, 401, "TOKEN_INVALID"},
		{"no token", "", ack, 401, "TOKEN_INVALID"},
		{"an unknown stream", d2.body.CallbackToken, strings.Replace(ack, "events/x", "events/nope", 1), 409, "INVALID_OFFSET"},
		{"past the tail", d2.body.CallbackToken, strings.Replace(ack, tail, "7f"+tail[2:], 1), 409, "INVALID_OFFSET"},
		{"bad JSON", d2.body.CallbackToken, `{"wake_id":`, 400, "INVALID_REQUEST"},
	} {
		r := settle(t, url, c.token, 0, "", c.body)
		if r.status != c.status || r.code(t) != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.body, c.status, c.code)
		}
	}
	if r := settle(t, url, d2.body.CallbackToken, 0, "", ack); r.status != 200 || r.body != "{\"next_wake\":false,\"ok\":true}\n" {
		t.Fatalf("ack: %d %q", r.status, r.body)
	}
	if r := settle(t, url, d2.body.CallbackToken, 0, "", ack); r.status != 409 || r.code(t) != "FENCED" {
		t.Fatalf("ack again: %d %s", r.status, r.body)
	}
	if !acked(t, n, "f", "events/x", tail) {
		t.Fatal("the ack did not move the acknowledged offset")
	}
	// A token of one subscription is no token of another.
	rcv2 := newReceiver(t, `{}`)
	n.do(t, "PUT", subs+"g", webhookBody(rcv2.url, "events/*", 1000), jsonCT)
	n.do(t, "POST", "/v1/stream/events/x", `{"n":2}`, jsonCT)
	dg := rcv2.next(t, 10*time.Second)
	body := fmt.Sprintf(`{"wake_id":%q,"generation":%d}`, dg.body.WakeID, dg.body.Generation)
	if r := settle(t, url, dg.body.CallbackToken, 0, "", body); r.status != 401 {
		t.Fatalf("g's token on f: %d %s", r.status, r.body)
	}
}

func TestPullWake(t *testing.T) {
	n := newNode(t, newBroker(t))
	n.do(t, "PUT", "/v1/stream/wake/pool", `[]`, jsonCT)
	if r := n.do(t, "PUT", subs+"p", `{"type":"pull-wake","pattern":"jobs/*","wake_stream":"wake/pool","lease_ttl_ms":1000}`, jsonCT); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if r := n.do(t, "POST", subs+"p/claim", `{"worker":"w1"}`, jsonCT); r.status != 409 || r.code(t) != "NO_PENDING_WORK" {
		t.Fatalf("claim with nothing pending: %d %s", r.status, r.body)
	}
	n.do(t, "PUT", "/v1/stream/jobs/1", `{"job":1}`, jsonCT)
	if !testkit.Within(10*time.Second, func() bool {
		return strings.Contains(n.do(t, "GET", "/v1/stream/wake/pool?offset=-1", "").body, `"subscription_id":"p","stream":"jobs/1","generation":1`)
	}) {
		t.Fatalf("no wake event: %s", n.do(t, "GET", "/v1/stream/wake/pool?offset=-1", "").body)
	}
	r := n.do(t, "POST", subs+"p/claim", `{"worker":"w1"}`, jsonCT)
	if r.status != 200 {
		t.Fatalf("claim: %d %s", r.status, r.body)
	}
	var c struct {
		WakeID     string `json:"wake_id"`
		Generation int64
		Token      string
		Streams    []struct {
			Path       string
			TailOffset string `json:"tail_offset"`
		}
	}
	_ = json.Unmarshal([]byte(r.body), &c)
	busy := n.do(t, "POST", subs+"p/claim", `{"worker":"w2"}`, jsonCT)
	if busy.status != 409 || busy.code(t) != "ALREADY_CLAIMED" || busy.json(t)["error"].(map[string]any)["current_holder"] != "w1" {
		t.Fatalf("second claim: %d %s", busy.status, busy.body)
	}
	// The holder's lease runs out: another worker claims the wake again.
	var c2 reply
	if !testkit.Within(10*time.Second, func() bool {
		c2 = n.do(t, "POST", subs+"p/claim", `{"worker":"w2"}`, jsonCT)
		return c2.status == 200
	}) {
		t.Fatalf("claim after the lease: %d %s", c2.status, c2.body)
	}
	ack := fmt.Sprintf(`{"wake_id":%q,"generation":%d,"acks":[{"stream":"jobs/1","offset":%q}],"done":true}`, c.WakeID, c.Generation, c.Streams[0].TailOffset)
	if r := call(t, "POST", n.url+subs+"p/ack", ack, jsonCT, "Authorization: Bearer "+c.Token); r.status != 409 || r.code(t) != "FENCED" {
		t.Fatalf("the first holder's ack after its lease: %d %s", r.status, r.body)
	}
	var cl2 struct {
		WakeID     string `json:"wake_id"`
		Generation int64
		Token      string
	}
	_ = json.Unmarshal([]byte(c2.body), &cl2)
	ack2 := fmt.Sprintf(`{"wake_id":%q,"generation":%d,"acks":[{"stream":"jobs/1","offset":%q}],"done":true}`, cl2.WakeID, cl2.Generation, c.Streams[0].TailOffset)
	if r := call(t, "POST", n.url+subs+"p/ack", ack2, jsonCT, "Authorization: Bearer "+cl2.Token); r.status != 200 {
		t.Fatalf("ack: %d %s", r.status, r.body)
	}
	n.do(t, "POST", "/v1/stream/jobs/1", `{"job":2}`, jsonCT)
	var c3 reply
	if !testkit.Within(10*time.Second, func() bool {
		c3 = n.do(t, "POST", subs+"p/claim", `{"worker":"w3"}`, jsonCT)
		return c3.status == 200
	}) {
		t.Fatalf("claim of the next wake: %d %s", c3.status, c3.body)
	}
	_ = json.Unmarshal([]byte(c3.body), &cl2)
	rel := fmt.Sprintf(`{"wake_id":%q,"generation":%d}`, cl2.WakeID, cl2.Generation)
	if r := call(t, "POST", n.url+subs+"p/release", rel, jsonCT, "Authorization: Bearer "+cl2.Token); r.status != 204 {
		t.Fatalf("release: %d %s", r.status, r.body)
	}
	// Released with data still pending: claimable again at once.
	if r := n.do(t, "POST", subs+"p/claim", `{"worker":"w4"}`, jsonCT); r.status != 200 {
		t.Fatalf("claim after release: %d %s", r.status, r.body)
	}
}

func TestExplicitStreams(t *testing.T) {
	n := newNode(t, newBroker(t))
	n.do(t, "PUT", "/v1/stream/manual/a", `{"n":1}`, jsonCT)
	if r := n.do(t, "PUT", subs+"e", `{"type":"webhook","streams":["manual/a"],"webhook":{"url":"https://example.com/h"}}`, jsonCT); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if r := n.do(t, "POST", subs+"e/streams", `{"streams":["manual/b","/manual/c/"]}`, jsonCT); r.status != 204 {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	if r := n.do(t, "DELETE", subs+"e/streams/manual%2Fb", ""); r.status != 204 {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	body := n.do(t, "GET", subs+"e", "").body
	var s struct {
		Streams []struct{ Path, LinkType, AckedOffset string }
	}
	_ = json.Unmarshal([]byte(strings.ReplaceAll(strings.ReplaceAll(body, "link_type", "linktype"), "acked_offset", "ackedoffset")), &s)
	got := fmt.Sprint(s.Streams)
	// manual/a was linked at its tail (its data is not pending); manual/c
	// does not exist yet (-1).
	if len(s.Streams) != 2 || s.Streams[0].Path != "manual/a" || s.Streams[0].LinkType != "explicit" || s.Streams[0].AckedOffset == "-1" ||
		s.Streams[1].Path != "manual/c" || s.Streams[1].AckedOffset != "-1" {
		t.Fatalf("streams %s (%s)", got, body)
	}
	if r := n.do(t, "POST", subs+"nosuch/streams", `{"streams":["x"]}`, jsonCT); r.status != 404 {
		t.Fatalf("add to a missing subscription: %d %s", r.status, r.body)
	}
}

// TestAcrossNodes: two nodes on one broker (memory, Redis, NATS). A
// subscription made on one is served by the other; a write on the other is
// delivered exactly once; both sign with the same key.
func TestAcrossNodes(t *testing.T) {
	for _, dep := range deployments() {
		t.Run(dep.name, func(t *testing.T) { testAcrossNodes(t, dep.open(t)) })
	}
}

func testAcrossNodes(t *testing.T, open func(t *testing.T) pubsub.Broker) {
	a, bn := newNode(t, open(t)), newNode(t, open(t))
	if ja, jb := a.do(t, "GET", "/v1/stream/__ds/jwks.json", "").body, bn.do(t, "GET", "/v1/stream/__ds/jwks.json", "").body; ja != jb {
		t.Fatalf("the nodes' keys differ: %s %s", ja, jb)
	}
	rcv := newReceiver(t, `{"done":true}`)
	if r := a.do(t, "PUT", subs+"x", webhookBody(rcv.url, "events/*", 1000), jsonCT); r.status != 201 {
		t.Fatalf("create on a: %d %s", r.status, r.body)
	}
	if r := bn.do(t, "GET", subs+"x", ""); r.status != 200 {
		t.Fatalf("read on b: %d %s", r.status, r.body)
	}
	bn.do(t, "PUT", "/v1/stream/events/n", `{"n":1}`, jsonCT)
	d1 := rcv.next(t, 10*time.Second)
	if !testkit.Within(10*time.Second, func() bool { return acked(t, a, "x", "events/n", d1.body.Streams[0].TailOffset) }) {
		t.Fatal("not acknowledged")
	}
	a.do(t, "POST", "/v1/stream/events/n", `{"n":2}`, jsonCT)
	if d2 := rcv.next(t, 10*time.Second); d2.body.Generation != 2 {
		t.Fatalf("after %s, a delivery of generation %d (a duplicate?): %s", d1.raw, d2.body.Generation, d2.raw)
	}
}

// TestLogRotation: a subscription's log moves to a new segment every few
// records and the old one is purged; concurrent changes on two nodes
// across rotations are all kept, and a new node reads the newest state. On
// every deployment.
func TestLogRotation(t *testing.T) {
	for _, dep := range deployments() {
		t.Run(dep.name, func(t *testing.T) { testLogRotation(t, dep.open(t)) })
	}
}

func testLogRotation(t *testing.T, open func(t *testing.T) pubsub.Broker) {
	small := func(o *dssub.Options) { o.RotateEvery = 3 }
	a, c := newNode(t, open(t), small), newNode(t, open(t), small)
	if r := a.do(t, "PUT", subs+"r", `{"type":"webhook","streams":["s/0"],"webhook":{"url":"https://example.com/h"}}`, jsonCT); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	const n = 30
	var wg sync.WaitGroup
	for i := 1; i <= n; i++ {
		node := a
		if i%2 == 0 {
			node = c
		}
		wg.Go(func() {
			if r := node.do(t, "POST", subs+"r/streams", fmt.Sprintf(`{"streams":["s/%d"]}`, i), jsonCT); r.status != 204 {
				t.Errorf("add s/%d: %d %s", i, r.status, r.body)
			}
		})
	}
	wg.Wait()
	b := open(t)
	fresh := newNode(t, b, small)
	for _, node := range []*node{a, c, fresh} {
		body := node.do(t, "GET", subs+"r", "").body
		for i := 0; i <= n; i++ {
			if !strings.Contains(body, fmt.Sprintf(`"path":"s/%d"`, i)) {
				t.Fatalf("stream s/%d lost: %s", i, body)
			}
		}
	}
	cond := b.(pubsub.Conditional)
	root, _, err := cond.ReadTopic(t.Context(), dssub.Topic("r"), pubsub.Position{}, 0)
	if err != nil || len(root) < n/3-1 {
		t.Fatalf("the root holds %d pointers (%v), want about %d", len(root), err, n/3)
	}
	for _, k := range []string{"/0", "/1"} {
		if old, _, _ := cond.ReadTopic(t.Context(), dssub.Topic("r")+k, pubsub.Position{}, 0); len(old) != 0 {
			t.Fatalf("segment %s holds %d records after rotations, want it purged", k, len(old))
		}
	}
	// Deleted and made again, across rotations.
	c.do(t, "DELETE", subs+"r", "")
	if r := fresh.do(t, "GET", subs+"r", ""); r.status != 404 {
		t.Fatalf("after delete on another node: %d %s", r.status, r.body)
	}
}

// syncBuf is a log sink safe for concurrent writes.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWebhookRetry: a failing webhook is retried with backoff, the same
// wake; the log says so without the URL (it may carry a secret).
func TestWebhookRetry(t *testing.T) {
	var logs syncBuf
	n := newNode(t, newBroker(t), func(o *dssub.Options) { o.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	var calls atomic.Int32
	got := make(chan delivery, 8)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var d delivery
		d.raw = b
		_ = json.Unmarshal(b, &d.body)
		got <- d
		if calls.Add(1) == 1 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"done":true}`)
	}))
	defer ts.Close()
	hook := ts.URL + "/hook?secret=s3cr3t-value"
	if r := n.do(t, "PUT", subs+"r", webhookBody(hook, "events/*", 5000), jsonCT); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	n.do(t, "PUT", "/v1/stream/events/r", `{"n":1}`, jsonCT)
	rcv := &receiver{got: got}
	first, again := rcv.next(t, 10*time.Second), rcv.next(t, 10*time.Second)
	if again.body.WakeID != first.body.WakeID || again.body.Generation != first.body.Generation {
		t.Fatalf("the retry is another wake: %s then %s", first.raw, again.raw)
	}
	if !testkit.Within(10*time.Second, func() bool { return acked(t, n, "r", "events/r", again.body.Streams[0].TailOffset) }) {
		t.Fatal("the retry's done did not acknowledge")
	}
	// A receiver that is not there: the transport's error names the URL.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "http://" + ln.Addr().String() + "/hook?secret=s3cr3t-value"
	ln.Close()
	if r := n.do(t, "PUT", subs+"gone", webhookBody(gone, "events/*", 5000), jsonCT); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	n.do(t, "POST", "/v1/stream/events/r", `{"n":2}`, jsonCT)
	if !testkit.Within(10*time.Second, func() bool { return strings.Contains(logs.String(), "subscription=gone") }) {
		t.Fatalf("no retry logged for the missing receiver: %s", logs.String())
	}
	rcv.next(t, 10*time.Second) // r's wake of the append
	if l := logs.String(); !strings.Contains(l, "retrying") || strings.Contains(l, "s3cr3t") {
		t.Fatalf("log: %s", l)
	}
	n.do(t, "DELETE", subs+"gone", "")
	// A deleted stream made again is pending from its start.
	n.do(t, "DELETE", "/v1/stream/events/r", "")
	n.do(t, "PUT", "/v1/stream/events/r", `{"n":"again"}`, jsonCT)
	if d := rcv.next(t, 10*time.Second); d.body.Generation != first.body.Generation+2 {
		t.Fatalf("after the stream was made again: %s", d.raw)
	}
}
