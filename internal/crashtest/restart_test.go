package crashtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/sse"
)

// TestRestartKeepsState restarts an in-process server on the same data
// directory: the epoch, history, retained state and finished topics survive,
// and a client resumes exactly.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	withDir := func(c *config.Server) { c.Broker.DataDir = dir }
	c := &http.Client{}
	defer c.CloseIdleConnections()

	srv := apptest.Start(t, withDir)
	epoch := srv.App.Hub().Broker().Epoch()
	var ids []string
	for i := range 20 {
		ids = append(ids, post(t, c, srv.URL, fmt.Sprintf(`{"topic":"news","data":"n%d"}`, i), http.StatusOK))
	}
	post(t, c, srv.URL, `{"topic":"state","data":"s1","retain":true}`, http.StatusOK)
	post(t, c, srv.URL, `{"topic":"done","data":"bye","final":true}`, http.StatusOK)
	srv.Stop()

	srv = apptest.Start(t, withDir)
	if e := srv.App.Hub().Broker().Epoch(); e != epoch {
		t.Fatalf("epoch after restart %q, want %q", e, epoch)
	}
	ids = append(ids, post(t, c, srv.URL, `{"topic":"news","data":"n20"}`, http.StatusOK))
	got := readTopic(t, c, srv.URL, "news", ids[9], 0)
	if len(got) != 11 {
		t.Fatalf("resumed after %s: %d events, want 11", ids[9], len(got))
	}
	for i, ev := range got {
		if ev.id.String() != ids[10+i] || ev.data != fmt.Sprintf("n%d", 10+i) {
			t.Fatalf("event %d: %v %q, want %s n%d", i, ev.id, ev.data, ids[10+i], 10+i)
		}
	}
	if ev := firstEvent(t, c, srv.URL, "state"); ev.Data != "s1" {
		t.Fatalf("retained state after restart: %+v, want s1", ev)
	}
	post(t, c, srv.URL, `{"topic":"done","data":"again"}`, http.StatusConflict)
}

// firstEvent subscribes to topic as a new client and returns its first
// event.
func firstEvent(t *testing.T, c *http.Client, url, topic string) sse.Event {
	t.Helper()
	s := testkit.Subscribe(t, c, url+"/events?topic="+topic, nil)
	defer s.Close()
	return s.Next(t)
}

// post publishes a JSON body and returns the event id (if the status is 200).
func post(t *testing.T, c *http.Client, url, body string, status int) string {
	t.Helper()
	resp, err := c.Post(url+"/publish", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("publish %s: %d %s, want %d", body, resp.StatusCode, raw, status)
	}
	var r struct{ ID string }
	_ = json.Unmarshal(raw, &r)
	if status == http.StatusOK {
		if _, err := pubsub.ParsePosition(r.ID); err != nil {
			t.Fatalf("publish %s: id %q: %v", body, r.ID, err)
		}
	}
	return r.ID
}
