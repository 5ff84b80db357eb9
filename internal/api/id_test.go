package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/api"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/memory"
)

// TestPublishID: an event published again with its id (form or JSON) is
// stored once and answered with the first one's id; a malformed id is a
// 400 with a JSON error.
func TestPublishID(t *testing.T) {
	mb := memory.New(nil)
	defer mb.Close()
	h := hub.New(mb, nil)
	p := &api.Publisher{Hub: h, MaxDataBytes: 1 << 20, MaxBatch: 10}
	post := func(ctype, body string) (int, string) {
		req := httptest.NewRequest(http.MethodPost, "/publish", strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		w := httptest.NewRecorder()
		p.ServeHTTP(w, req)
		return w.Code, strings.TrimSpace(w.Body.String())
	}
	const form, js = "application/x-www-form-urlencoded", "application/json"
	c1, first := post(js, `{"topic":"t","data":"1","id":"evt-1"}`)
	c2, again := post(form, url.Values{"topic": {"t"}, "data": {"1 (retry)"}, "id": {"evt-1"}}.Encode())
	c3, other := post(js, `{"topic":"t","data":"2","id":"evt-2"}`)
	if c1 != 200 || c2 != 200 || c3 != 200 || again != first || other == first {
		t.Fatalf("answers %d %s, %d %s, %d %s: want the first id again for the retry", c1, first, c2, again, c3, other)
	}
	snap, err := mb.Read(context.Background(), pubsub.Query{Topics: []string{"t"}, After: &pubsub.Position{Epoch: mb.Epoch()}})
	if err != nil || len(snap.Events) != 2 {
		t.Fatalf("history %v, %v: want 2 events", snap.Events, err)
	}
	for _, bad := range []string{`{"topic":"t","id":"has space"}`, `{"topic":"t","id":"` + strings.Repeat("x", pubsub.MaxIDLen+1) + `"}`, `{"topic":"t","id":"\u00e9"}`} {
		if code, body := post(js, bad); code != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want 400 with a JSON error", bad, code, body)
		}
	}
}
