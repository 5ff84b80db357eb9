package cli_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/heraldpush/herald/internal/ssecases"
)

// `herald subscribe --format json` prints, for every WHATWG case of the sse
// decoder, the events a browser's EventSource dispatches, each with the id
// a MessageEvent gives as lastEventId: the last id the stream set, kept
// across events without an id line, cleared by an empty id, untouched by an
// id with NUL. The stream comes whole, and one byte per write.
func TestSubscribeJSONIDsAreTheBrowsers(t *testing.T) {
	leakCheck(t)
	for _, c := range ssecases.Cases() {
		for _, mode := range []string{"whole", "bytes"} {
			t.Run(c.Name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				stream := c.Stream()
				var mu sync.Mutex
				conns := 0
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					mu.Lock()
					conns++
					n := conns
					mu.Unlock()
					if n > 1 {
						w.WriteHeader(http.StatusNoContent) // the command exits
						return
					}
					w.Header().Set("Content-Type", "text/event-stream")
					rc := http.NewResponseController(w)
					if mode == "whole" {
						w.Write(stream)
						return
					}
					for i := range stream {
						w.Write(stream[i : i+1])
						rc.Flush()
					}
				}))
				defer srv.Close()
				s := startSubscribe(t, "--server", srv.URL, "--topic", "t", "--format", "json")
				// The stream has ended (the events it dispatched are
				// printed) once the command says so, or has exited after a
				// quick reconnection.
				s.waitErr(t, "connection lost")
				s.cancel()
				s.wait(t)
				var want strings.Builder
				for _, ev := range c.Events {
					b, _ := json.Marshal(map[string]string{"id": ev.LastEventID, "event": ev.Type, "data": ev.Data, "topic": "t"})
					want.Write(append(b, '\n'))
				}
				if got := canonicalJSONLines(t, s.out.String()); got != want.String() {
					t.Errorf("stream %s:\n got %s\nwant %s", c.In, got, want.String())
				}
			})
		}
	}
}

// canonicalJSONLines re-encodes each line with sorted keys.
func canonicalJSONLines(t *testing.T, out string) string {
	t.Helper()
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if l == "" {
			continue
		}
		var v map[string]string
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		j, _ := json.Marshal(v)
		b.Write(append(j, '\n'))
	}
	return b.String()
}
