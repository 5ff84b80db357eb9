package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/sseclient"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutine leak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func newClient(t *testing.T, url string, header http.Header) *client.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return client.New(url, &client.Options{HTTPClient: &http.Client{Transport: tr}, Header: header})
}

// next reads events from c until one that is not a herald.reset arrives.
func next(t *testing.T, ctx context.Context, c *sseclient.Client) (ev struct{ ID, Type, Data string }) {
	t.Helper()
	for e, err := range c.Events(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		ev.ID, ev.Type, ev.Data = e.ID, e.Type, e.Data
		return ev
	}
	t.Fatal("the stream ended")
	return ev
}

func TestPublish(t *testing.T) {
	srv := apptest.Start(t, nil)
	c := newClient(t, srv.URL+"/", nil) // a trailing slash is fine
	ctx := t.Context()

	id, err := c.Publish(ctx, "news", "line 1\nline 2", &client.PublishOptions{Event: "note", Topics: []string{"other"}})
	if err != nil {
		t.Fatal(err)
	}
	pos, err := pubsub.ParsePosition(id)
	if err != nil || pos.Offset != 1 {
		t.Fatalf("id %q: %v", id, err)
	}
	// Published to both topics, with its type and data intact.
	for _, topic := range []string{"news", "other"} {
		sub := c.Subscribe([]string{topic}, &sseclient.Options{LastEventID: pos.Epoch + "-0"})
		ev := next(t, ctx, sub)
		if ev.ID != id || ev.Type != "note" || ev.Data != "line 1\nline 2" {
			t.Errorf("%s: got %+v", topic, ev)
		}
	}

	// Retain: a new subscriber gets the event first.
	rid, err := c.Publish(ctx, "state", `{"pct":40}`, &client.PublishOptions{Retain: true})
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ctx, c.Subscribe([]string{"state"}, nil)); ev.ID != rid || ev.Data != `{"pct":40}` {
		t.Errorf("retained: got %+v", ev)
	}

	// Final: the topic takes nothing more.
	if _, err := c.Publish(ctx, "job", "done", &client.PublishOptions{Final: true}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Publish(ctx, "job", "late", nil)
	var se *client.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusConflict || !strings.Contains(se.Message, "finished") {
		t.Errorf("publish after final: %v, want 409 with the server's message", err)
	}
}

func TestPublishRefused(t *testing.T) {
	srv := apptest.Start(t, nil)
	c := newClient(t, srv.URL, nil)
	tests := []struct {
		name   string
		topic  string
		opts   *client.PublishOptions
		status int
		msg    string
	}{
		{"missing topic", "", nil, 400, "missing topic"},
		{"control character in topic", "a\x01b", nil, 400, "control character"},
		{"reserved event type", "t", &client.PublishOptions{Event: "herald.reset"}, 400, "reserved"},
		{"event type with a line break", "t", &client.PublishOptions{Event: "a\nb"}, 400, "CR or LF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := c.Publish(t.Context(), tt.topic, "x", tt.opts)
			var se *client.StatusError
			if !errors.As(err, &se) || se.StatusCode != tt.status || !strings.Contains(se.Message, tt.msg) {
				t.Fatalf("got %q, %v; want a %d with a message about %q", id, err, tt.status, tt.msg)
			}
			if !strings.Contains(err.Error(), se.Message) || !strings.Contains(err.Error(), fmt.Sprint(tt.status)) {
				t.Errorf("error text %q lacks the status or the message", err)
			}
		})
	}
}

func TestPublishUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	_, err = newClient(t, url, nil).Publish(t.Context(), "t", "x", nil)
	var se *client.StatusError
	var op *net.OpError
	if err == nil || errors.As(err, &se) || !errors.As(err, &op) {
		t.Errorf("err = %v, want a wrapped dial error", err)
	}
}

func TestPublishRequest(t *testing.T) {
	var got *http.Request
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got, body = r, string(b)
		switch r.URL.Query().Get("case") {
		case "no-id":
			fmt.Fprintln(w, `{}`)
		case "not-json":
			fmt.Fprintln(w, `<html>`)
		case "busy":
			w.Header().Set("Retry-After", "2")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"error":"broker unavailable"}`)
		default:
			fmt.Fprintln(w, `{"id":"e-1"}`)
		}
	}))
	defer srv.Close()
	c := newClient(t, srv.URL+"/prefix", http.Header{"Authorization": {"Bearer t"}})
	id, err := c.Publish(t.Context(), "a", "", &client.PublishOptions{Topics: []string{"b"}, Retain: true, Final: true, Private: true})
	if err != nil || id != "e-1" {
		t.Fatalf("got %q, %v", id, err)
	}
	if got.URL.Path != "/prefix/publish" || got.Method != http.MethodPost || got.Header.Get("Authorization") != "Bearer t" || got.Header.Get("Content-Type") != "application/json" {
		t.Errorf("request %s %s %v", got.Method, got.URL, got.Header)
	}
	if want := `{"topics":["a","b"],"data":"","retain":true,"final":true,"private":true}`; body != want {
		t.Errorf("body %s, want %s", body, want)
	}

	for _, tt := range []struct{ path, want string }{
		{"/x?case=no-id", `no "id"`},
		{"/x?case=not-json", "unreadable answer"},
		{"/x?case=busy", "503 Service Unavailable: broker unavailable"},
	} {
		req := client.New(srv.URL, &client.Options{HTTPClient: &http.Client{Transport: rewrite{tt.path}}})
		_, err := req.Publish(t.Context(), "a", "x", nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.path, err, tt.want)
		}
		var se *client.StatusError
		if tt.path == "/x?case=busy" && (!errors.As(err, &se) || se.RetryAfter != 2*time.Second) {
			t.Errorf("busy: %#v, want RetryAfter 2s", err)
		}
	}
}

// rewrite sends requests to the test server with the query of its path.
type rewrite struct{ pathQuery string }

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.RawQuery = strings.SplitN(r.pathQuery, "?", 2)[1]
	return http.DefaultTransport.RoundTrip(req)
}

func TestEventsURL(t *testing.T) {
	c := client.New("https://push.example.com/herald/", nil)
	if got, want := c.EventsURL("a b", "c&d", "é"), "https://push.example.com/herald/events?topic=a+b&topic=c%26d&topic=%C3%A9"; got != want {
		t.Errorf("EventsURL = %s, want %s", got, want)
	}
	if got := c.Subscribe([]string{"x"}, nil).URL(); got != "https://push.example.com/herald/events?topic=x" {
		t.Errorf("Subscribe URL = %s", got)
	}
}
