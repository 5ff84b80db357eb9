package sseclient

import (
	"fmt"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldpush/herald/internal/ssecases"
)

// Every WHATWG case of the sse decoder, whole and one byte per read: the
// client yields the events an EventSource dispatches (with its lastEventId
// as ID), reconnects with the last event ID (none when it is empty) and
// after the reconnection time the stream set (at least 100 ms after a
// connection that delivered no event, unlike a browser: see
// docs/client.md).
func TestWHATWGCases(t *testing.T) {
	for _, c := range ssecases.Cases() {
		stream := c.Stream()
		for _, mode := range []string{"whole", "bytes"} {
			t.Run(c.Name+"/"+mode, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					chunks := []string{string(stream)}
					if mode == "bytes" {
						chunks = chunks[:0]
						for i := range stream {
							chunks = append(chunks, string(stream[i:i+1]))
						}
					}
					s := &script{steps: []step{sseOK(chunks...)}}
					cl := New("http://herald.test/", &Options{HTTPClient: &http.Client{Transport: s}, InitialDelay: time.Second})
					var got []ssecases.Event
					for ev, err := range cl.Events(t.Context()) {
						if err != nil {
							t.Fatal(err)
						}
						got = append(got, ssecases.Event{Type: ev.Type, Data: ev.Data, LastEventID: ev.ID})
					}
					if fmt.Sprint(got) != fmt.Sprint(c.Events) && len(got)+len(c.Events) > 0 {
						t.Errorf("events %+v, want %+v", got, c.Events)
					}
					wantDelay := time.Second
					if c.RetryMS != nil {
						wantDelay = time.Duration(*c.RetryMS) * time.Millisecond
					}
					if len(c.Events) == 0 {
						wantDelay = max(wantDelay, minBackoff)
					}
					if len(s.reqs) != 2 {
						t.Fatalf("%d requests, want 2", len(s.reqs))
					}
					ids, sent := s.reqs[1].Header["Last-Event-Id"]
					if sent != (c.LastEventID != "") || (sent && ids[0] != c.LastEventID) {
						t.Errorf("reconnected with Last-Event-ID %q (sent: %v), want %q", ids, sent, c.LastEventID)
					}
					if gap, century := s.gaps()[0], 100*365*24*time.Hour; wantDelay > century {
						// (The fake clock ends before such a timer.)
						if gap < century {
							t.Errorf("reconnected after %v, want never (%v)", gap, wantDelay)
						}
					} else {
						within(t, "reconnection", gap, wantDelay)
					}
				})
			})
		}
	}
}
