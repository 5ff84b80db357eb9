package dssub_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestOddInput: every route answers odd input (null, arrays, huge
// numbers, deep nesting, bodies over the limit, odd ids and paths) with a
// 4xx JSON error, never a panic, a 5xx or a success.
func TestOddInput(t *testing.T) {
	n := newNode(t, newBroker(t))
	n.do(t, "PUT", "/v1/stream/w", `[]`, jsonCT)
	if r := n.do(t, "PUT", subs+"p", `{"type":"pull-wake","pattern":"a/*","wake_stream":"w"}`, jsonCT); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	big := `{"type":"webhook","pattern":"a/*","description":"` + strings.Repeat("x", 70<<10) + `"}`
	bodies := []string{`null`, `[]`, `"x"`, `1e999`, `{"type":null}`, `{"lease_ttl_ms":1e400}`, `{"generation":1e30}`,
		`{"generation":-1}`, `{"wake_id":null,"generation":null}`, `{"acks":[null]}`, `{"acks":{}}`, `{"streams":null}`,
		`{"streams":[null]}`, `{"worker":null}`, `{"type":"pull-wake","pattern":"a/*","wake_stream":"w","lease_ttl_ms":99999999999999999999999}`,
		`{"a":1,"a":2}`, `{}{}`, "\xff\xfe", deep, big}
	paths := []string{subs + "p", subs + "p/streams", subs + "p/claim", subs + "p/callback", subs + "p/ack", subs + "p/release"}
	for _, p := range paths {
		method := "POST"
		if p == subs+"p" {
			method = "PUT"
		}
		for _, b := range bodies {
			r := n.do(t, method, p, b, jsonCT, "Authorization: Bearer 1.w_x.AAAA")
			if r.status < 400 || r.status > 499 {
				t.Errorf("%s %s %.40q: %d %.200s, want 4xx", method, p, b, r.status, r.body)
				continue
			}
			r.code(t)
			if b == big && r.status != http.StatusRequestEntityTooLarge && !strings.HasSuffix(p, "callback") && !strings.HasSuffix(p, "ack") && !strings.HasSuffix(p, "release") {
				t.Errorf("%s %s with a body over the limit: %d, want 413", method, p, r.status)
			}
		}
	}
	alive := func(when string) {
		t.Helper()
		if r := n.do(t, "GET", subs+"p", ""); r.status != 200 {
			t.Fatalf("%s: subscription p is gone: %d %s", when, r.status, r.body)
		}
	}
	alive("after the bodies")
	for _, id := range []string{"..", ".", "%2e%2e", "a%2fb", "a%00b", "%20", strings.Repeat("a", 129), "a%ffb", "__ds"} {
		for _, m := range []string{"GET", "DELETE", "PUT"} {
			r := n.do(t, m, subs+id, `{}`, jsonCT)
			if r.status < 400 || r.status > 499 {
				t.Errorf("%s %s: %d %.200s, want 4xx", m, subs+id, r.status, r.body)
			}
			alive(m + " " + id)
		}
	}
	for _, p := range []string{"..", "../w", "a/../../w", "__ds/x", "%00", "a//b"} {
		r := n.do(t, "DELETE", subs+"p/streams/"+p, "")
		if r.status != 204 && (r.status < 400 || r.status > 499) {
			t.Errorf("DELETE streams/%s: %d %.200s", p, r.status, r.body)
		}
		// No URL reaches a stream at such a path: refused, not linked.
		r = n.do(t, "POST", subs+"p/streams", `{"streams":["`+p+`"]}`, jsonCT)
		if p != "__ds/x" && p != "%00" && (r.status != 400 || r.code(t) != "INVALID_REQUEST") {
			t.Errorf("POST streams %s: %d %.200s, want 400 INVALID_REQUEST", p, r.status, r.body)
		}
		r = n.do(t, "PUT", subs+"q", `{"type":"pull-wake","streams":["x"],"wake_stream":"`+p+`"}`, jsonCT)
		if p != "%00" && (r.status != 400 || r.code(t) != "INVALID_REQUEST") {
			t.Errorf("PUT with wake_stream %s: %d %.200s, want 400 INVALID_REQUEST", p, r.status, r.body)
		}
	}
	for _, p := range []string{"./a", "a/./b"} {
		if r := n.do(t, "POST", subs+"p/streams", `{"streams":["`+p+`"]}`, jsonCT); r.status != 400 {
			t.Errorf("POST streams %s: %d %.200s, want 400", p, r.status, r.body)
		}
	}
}
