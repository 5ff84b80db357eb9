package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/heraldpush/herald/client"
)

// fakeHerald answers POST /publish as a Herald server does.
func fakeHerald() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer secret" {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintln(w, `{"error":"this token may not publish to \"news\""}`)
			return
		}
		fmt.Fprintln(w, `{"id":"8x1k2m9q0z-1"}`)
	}))
}

func ExampleClient_Publish() {
	srv := fakeHerald() // e.g. "http://localhost:8080"
	defer srv.Close()

	c := client.New(srv.URL, &client.Options{Header: http.Header{"Authorization": {"Bearer secret"}}})
	id, err := c.Publish(context.Background(), "news", "Hello, Herald", &client.PublishOptions{Event: "greeting"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("published", id)

	_, err = client.New(srv.URL, nil).Publish(context.Background(), "news", "no token", nil)
	var se *client.StatusError
	if errors.As(err, &se) {
		fmt.Println("refused:", se.StatusCode, se.Message)
	}
	// Output:
	// published 8x1k2m9q0z-1
	// refused: 403 this token may not publish to "news"
}
