package securitytest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/app"
	"github.com/heraldpush/herald/internal/apptest"
)

// FuzzPublish sends fuzzed publish requests (content type, body, token)
// through the whole middleware and the publish API, in process: every
// answer is 200 or a 4xx with a JSON error, never a 5xx or a panic.
func FuzzPublish(f *testing.F) {
	f.Add("application/json", []byte(`{"topic":"orders/1","data":"x"}`), uint8(1))
	f.Add("application/json", []byte(`[{"topic":"orders/1","data":{"a":[1,2]}},{"topics":["orders/2","orders/3"],"private":true}]`), uint8(1))
	f.Add("application/x-www-form-urlencoded", []byte("topic=orders%2F1&data=a%0Ab&event=e&retain=true&final=false&private=on"), uint8(1))
	f.Add("application/x-www-form-urlencoded; charset=utf-8", []byte("topic=orders%2F1&topic=orders%2F1&data=%ff"), uint8(2))
	f.Add("application/json", []byte(`{"topic":"orders/1","event":"herald.reset"}`), uint8(0))
	f.Add("text/plain", []byte("hello"), uint8(3))
	f.Add("application/json", []byte(`{"topic":"orders/1","data":[[[[[[`), uint8(1))
	cfg := apptest.Config()
	cfg.Auth.JWT.Key = secret
	cfg.Limits.MaxDataBytes = 4 << 10
	cfg.HTTP.PublishRate = 0
	cfg.HTTP.LogRequests = false
	a, err := app.New(context.Background(), cfg, apptest.Logger(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close() })
	h := a.Handler()
	tokens := []string{"", mint(f, "backend", []string{"orders/*"}, nil, time.Hour), mint(f, "reader", nil, []string{"*"}, time.Hour), "garbage.token.x"}
	f.Fuzz(func(t *testing.T, ctype string, body []byte, tok uint8) {
		req := httptest.NewRequest(http.MethodPost, "/publish", bytes.NewReader(body))
		req.RemoteAddr = "192.0.2.1:1234"
		if ctype != "" {
			req.Header["Content-Type"] = []string{ctype}
		}
		if tk := tokens[int(tok)%len(tokens)]; tk != "" {
			req.Header.Set("Authorization", "Bearer "+tk)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			return
		}
		if rec.Code < 400 || rec.Code >= 500 {
			t.Fatalf("status %d for Content-Type %q body %q: %s", rec.Code, ctype, body, rec.Body)
		}
		var e errBody
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
			t.Fatalf("status %d without a JSON error: %q", rec.Code, rec.Body)
		}
	})
}
