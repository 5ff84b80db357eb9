package core_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
)

// TestVectorIDsOnEveryFace: a subscription of topics on several shards
// gets vector ids, and the same ones on /events, /ws and the Mercure
// endpoint (a Mercure update without a publisher's id carries Herald's);
// resuming from one of them on each face gives exactly what followed it.
func TestVectorIDsOnEveryFace(t *testing.T) {
	srv := start(t, func(c *config.Server) {
		c.Broker.Shards = 3
		c.Core.KeepAlive = time.Hour
	})
	a, b := testkit.ShardTopic("news", 0, 3), testkit.ShardTopic("weather", 2, 3)
	q := url.Values{"topic": {a, b}}.Encode()
	faces := []string{"sse", "ws", "mercure"}
	open := func(lastID string) map[string]func() (id, data string) {
		hdr := http.Header{}
		if lastID != "" {
			hdr.Set("Last-Event-ID", lastID)
		}
		next := map[string]func() (string, string){}
		for face, path := range map[string]string{"sse": "/events", "mercure": "/.well-known/mercure"} {
			s := testkit.Subscribe(t, newClient(t), srv.URL+path+"?"+q, hdr)
			next[face] = func() (string, string) {
				ev := s.Next(t)
				return ev.ID, ev.Data
			}
		}
		wsq := q
		if lastID != "" {
			wsq += "&lastEventID=" + url.QueryEscape(lastID)
		}
		c := dialWS(t, srv.URL, wsq)
		next["ws"] = func() (string, string) {
			for {
				var f struct{ Type, ID, Data string }
				readWS(t, c, &f)
				if f.Type == "event" {
					return f.ID, f.Data
				}
				if f.Type != "position" {
					t.Fatalf("websocket frame %+v", f)
				}
			}
		}
		testkit.WaitFor(t, "the three subscriptions", func() bool {
			n := srv.App.Hub().TopicCounts()
			return n[a] >= 3 && n[b] >= 3
		})
		return next
	}

	first := open("")
	sent := []struct{ topics, data string }{{a, "1"}, {b, "2"}, {a + "," + b, "3"}, {b, "4"}}
	for _, m := range sent {
		body, _ := json.Marshal(map[string]any{"topics": strings.Split(m.topics, ","), "data": m.data})
		resp, err := http.Post(srv.URL+"/publish", "application/json", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("publish %s: %d", body, resp.StatusCode)
		}
	}
	var ids []string
	for i, m := range sent {
		var id string
		for _, face := range faces {
			got, data := first[face]()
			if data != m.data {
				t.Fatalf("%s: event %d has data %q, want %q", face, i, data, m.data)
			}
			if !strings.Contains(got, "~") {
				t.Fatalf("%s: event %d has id %q, not a vector", face, i, got)
			}
			if id != "" && got != id {
				t.Fatalf("event %d: id %q on %s, %q on %s", i, got, face, id, faces[0])
			}
			id = got
		}
		ids = append(ids, id)
	}
	resumed := open(ids[1])
	for i := 2; i < len(sent); i++ {
		for _, face := range faces {
			if id, data := resumed[face](); id != ids[i] || data != sent[i].data {
				t.Fatalf("%s resumed from %s: event %q %q, want %q %q", face, ids[1], id, data, ids[i], sent[i].data)
			}
		}
	}
}

// dialWS opens a WebSocket subscription, closed when the test ends.
func dialWS(t *testing.T, base, query string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws?"+query, &websocket.DialOptions{HTTPClient: newClient(t)})
	if err != nil {
		t.Fatalf("dial /ws?%s: %v", query, err)
	}
	if resp.Body != nil {
		resp.Body.Close()
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// readWS reads one JSON text frame into v.
func readWS(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Timeout)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("websocket read: %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("websocket frame %s: %v", b, err)
	}
}
