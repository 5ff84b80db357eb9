package sseclient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/heraldpush/herald/sse"
	"github.com/heraldpush/herald/sseclient"
)

// A stream server for the examples: it sends one event per connection and
// ends the connection, resuming after the Last-Event-ID the client sends;
// after the second event it answers 204 No Content, which tells the client
// to stop.
func exampleServer() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Last-Event-ID") {
		case "":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "retry: 10\n\nid: 1\ndata: hello\n\n")
		case "1":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "id: 2\nevent: greeting\ndata: world\n\n")
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
}

func ExampleClient_Events() {
	srv := exampleServer()
	defer srv.Close()

	c := sseclient.New(srv.URL, nil)
	for ev, err := range c.Events(context.Background()) {
		if err != nil {
			fmt.Println("stopped:", err)
			return
		}
		fmt.Println(ev.ID, ev.Type, ev.Data)
	}
	fmt.Println("the server ended the stream; last id", c.LastEventID())
	// Output:
	// 1 message hello
	// 2 greeting world
	// the server ended the stream; last id 2
}

func ExampleOptions() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintln(w, `{"error":"missing or invalid token"}`)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	c := sseclient.New(srv.URL, &sseclient.Options{
		Header: http.Header{"Authorization": {"Bearer wrong"}},
		OnState: func(s sseclient.State, err error) {
			fmt.Println("state:", s, err)
		},
	})
	for _, err := range c.Events(context.Background()) {
		var se *sseclient.StatusError
		if errors.As(err, &se) {
			fmt.Println("refused:", se.StatusCode, se.Message)
		}
	}
	// Output:
	// state: connecting <nil>
	// state: closed sseclient: server answered 401 Unauthorized: missing or invalid token
	// refused: 401 missing or invalid token
}

func ExampleAsReset() {
	// As a Herald server sends it after a restart that lost its history.
	ev := sse.Event{Type: "herald.reset", Data: `{"reason":"epoch-changed","lastEventId":"8x1k2m9q0z-2"}`}

	if r, ok := sseclient.AsReset(ev); ok {
		// Events after r.LastEventID may have been missed: rebuild the
		// state kept from earlier events, e.g. reload it from its source.
		fmt.Println(r.Reason, r.LastEventID)
	}
	// Output: epoch-changed 8x1k2m9q0z-2
}

// A stream served in answer to a POST, as OpenAI-style "stream": true
// completions are: the body goes with every connection. Such a stream ends
// with "data: [DONE]", not with 204: the caller stops there.
func ExampleOptions_post() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, ": %s %s\n\ndata: {\"delta\":\"Hi\"}\n\ndata: [DONE]\n\n", r.Method, body)
	}))
	defer srv.Close()

	c := sseclient.New(srv.URL+"/v1/chat/completions", &sseclient.Options{
		Body:      sseclient.BodyBytes([]byte(`{"stream":true}`)),
		Header:    http.Header{"Content-Type": {"application/json"}},
		OnComment: func(text string) { fmt.Println("comment:", text) },
	})
	for ev, err := range c.Events(context.Background()) {
		if err != nil || ev.Data == "[DONE]" {
			break
		}
		fmt.Println(ev.Data)
	}
	// Output:
	// comment: POST {"stream":true}
	// {"delta":"Hi"}
}
