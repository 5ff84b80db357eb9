package sseclient_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/sseclient"
)

// seen is a request as a test server received it.
type seen struct {
	method, path, body string
	contentLength      int64
	header             http.Header
}

// recorder is a test server that records its requests and answers each
// with a two-event stream, then 204 No Content from the third on.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newRecorder(t *testing.T, mux func(*http.ServeMux, http.HandlerFunc)) *recorder {
	rec := &recorder{}
	serve := func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, seen{r.Method, r.URL.Path, string(b), r.ContentLength, r.Header.Clone()})
		n := len(rec.reqs)
		rec.mu.Unlock()
		if n > 2 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, ": hello %d\n\nid: %d\ndata: event %d\n\n", n, n, n)
	}
	m := http.NewServeMux()
	if mux != nil {
		mux(m, serve)
	} else {
		m.HandleFunc("/", serve)
	}
	rec.Server = httptest.NewServer(m)
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) seen() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.reqs...)
}

// Method, body and headers go with every connection, the body whole each
// time; PrepareRequest sees each request before it leaves.
func TestRequestMethodBodyAndHeaders(t *testing.T) {
	t.Parallel()
	const payload = `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	streaming := func() (io.Reader, error) {
		// Not a reader whose length is known: sent in chunks.
		return io.MultiReader(strings.NewReader(payload[:10]), strings.NewReader(payload[10:])), nil
	}
	for _, tt := range []struct {
		name          string
		method        string
		body          func() (io.Reader, error)
		wantMethod    string
		wantBody      string
		contentLength int64
	}{
		{"default GET", "", nil, "GET", "", 0},
		{"POST by default with a body", "", sseclient.BodyBytes([]byte(payload)), "POST", payload, int64(len(payload))},
		{"PUT with a streamed body", "PUT", streaming, "PUT", payload, -1},
		{"QUERY", "QUERY", sseclient.BodyBytes([]byte("q")), "QUERY", "q", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newRecorder(t, nil)
			attempt := 0
			var data []string
			c := sseclient.New(srv.URL+"/v1/stream", &sseclient.Options{
				Method:       tt.method,
				Body:         tt.body,
				Header:       http.Header{"Authorization": {"Bearer static"}, "Content-Type": {"application/json"}},
				InitialDelay: sseclient.NoDelay,
				PrepareRequest: func(r *http.Request) error {
					attempt++
					r.Header.Set("X-Attempt", fmt.Sprint(attempt))
					r.Header.Set("Authorization", fmt.Sprintf("Bearer fresh-%d", attempt))
					return nil
				},
			})
			for ev, err := range c.Events(t.Context()) {
				if err != nil {
					t.Fatal(err)
				}
				data = append(data, ev.Data)
			}
			if strings.Join(data, ",") != "event 1,event 2" {
				t.Fatalf("events %q", data)
			}
			reqs := srv.seen()
			if len(reqs) != 3 {
				t.Fatalf("%d requests, want 3 (two streams, then 204)", len(reqs))
			}
			for i, r := range reqs {
				if r.method != tt.wantMethod || r.body != tt.wantBody || r.path != "/v1/stream" {
					t.Errorf("request %d: %s %s with body %q; want %s with %q", i, r.method, r.path, r.body, tt.wantMethod, tt.wantBody)
				}
				if tt.wantBody != "" && r.contentLength != tt.contentLength {
					t.Errorf("request %d: Content-Length %d, want %d", i, r.contentLength, tt.contentLength)
				}
				for k, want := range map[string]string{
					"X-Attempt": fmt.Sprint(i + 1), "Authorization": fmt.Sprintf("Bearer fresh-%d", i+1),
					"Content-Type": "application/json", "Accept": "text/event-stream",
				} {
					if got := r.header.Get(k); got != want {
						t.Errorf("request %d: %s %q, want %q", i, k, got, want)
					}
				}
			}
			if got := reqs[1].header.Get("Last-Event-ID"); got != "1" {
				t.Errorf("reconnection's Last-Event-ID %q, want 1", got)
			}
		})
	}
}

// A 307 or 308 redirect sends the body on (the client gives net/http a
// way to get it again).
func TestRequestBodyFollowsRedirects(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		srv := newRecorder(t, func(m *http.ServeMux, serve http.HandlerFunc) {
			m.HandleFunc("/old", func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				http.Redirect(w, r, "/new", code)
			})
			m.HandleFunc("/new", serve)
		})
		body := func() (io.Reader, error) {
			return io.MultiReader(strings.NewReader("streamed "), strings.NewReader("body")), nil
		}
		c := sseclient.New(srv.URL+"/old", &sseclient.Options{Body: body, InitialDelay: sseclient.NoDelay})
		n := 0
		for _, err := range c.Events(t.Context()) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		reqs := srv.seen()
		if n != 2 || len(reqs) != 3 {
			t.Fatalf("%d: %d events, %d requests at /new; want 2, 3", code, n, len(reqs))
		}
		for _, r := range reqs {
			if r.method != "POST" || r.body != "streamed body" {
				t.Fatalf("%d: redirected request %s with body %q", code, r.method, r.body)
			}
		}
	}
}

// Errors building a request stop the client, before anything is sent.
func TestRequestErrors(t *testing.T) {
	t.Parallel()
	srv := newRecorder(t, nil)
	boom := errors.New("boom")
	closed := false
	for _, tt := range []struct {
		name string
		opts sseclient.Options
		want string
	}{
		{"body fails", sseclient.Options{Body: func() (io.Reader, error) { return nil, boom }}, "sseclient: request body: boom"},
		{"PrepareRequest fails", sseclient.Options{
			Body:           func() (io.Reader, error) { return &closeReader{Reader: strings.NewReader("x"), closed: &closed}, nil },
			PrepareRequest: func(*http.Request) error { return boom },
		}, "sseclient: PrepareRequest: boom"},
		{"bad method", sseclient.Options{Method: "BAD METHOD"}, "invalid method"},
	} {
		var got error
		for _, err := range sseclient.New(srv.URL, &tt.opts).Events(t.Context()) {
			got = err
		}
		if got == nil || !strings.Contains(got.Error(), tt.want) || (tt.name != "bad method" && !errors.Is(got, boom)) {
			t.Errorf("%s: yielded %v, want %q", tt.name, got, tt.want)
		}
	}
	if !closed {
		t.Error("the body of a request that was not sent was not closed")
	}
	if n := len(srv.seen()); n != 0 {
		t.Fatalf("%d requests reached the server", n)
	}
}

type closeReader struct {
	io.Reader
	closed *bool
}

func (r *closeReader) Close() error { *r.closed = true; return nil }

// Comment lines reach OnComment in order with the events, however the
// stream is split into reads; without OnComment they are skipped.
func TestOnComment(t *testing.T) {
	t.Parallel()
	const body = ": ok\n\nid: 1\ndata: a\n:\n:  two spaces\r\ndata: b\r\n\r\n:\xff\n\n"
	for _, split := range []string{"whole", "bytewise"} {
		pieces := []string{body}
		if split == "bytewise" {
			pieces = strings.Split(body, "")
		}
		s := newRawServer(t, stream(pieces...))
		var log []string
		c := sseclient.New(s.url, &sseclient.Options{
			HTTPClient:   s.client(t),
			InitialDelay: time.Millisecond,
			OnComment:    func(text string) { log = append(log, fmt.Sprintf("comment %q", text)) },
		})
		for ev, err := range c.Events(t.Context()) {
			if err != nil {
				t.Fatal(err)
			}
			log = append(log, fmt.Sprintf("event %q", ev.Data))
		}
		want := []string{`comment "ok"`, `comment ""`, `comment " two spaces"`, `event "a\nb"`, "comment \"\uFFFD\""}
		if strings.Join(log, "; ") != strings.Join(want, "; ") {
			t.Errorf("%s:\n got %s\nwant %s", split, strings.Join(log, "; "), strings.Join(want, "; "))
		}
	}
	s := newRawServer(t, stream(body))
	if g := run(t, s, nil); len(g.events) != 1 || g.err != nil {
		t.Fatalf("without OnComment: %v, %v", g, g.err)
	}
}
