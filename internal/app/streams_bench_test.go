package app_test

import (
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/sse"
)

// follow reads an SSE response in a goroutine and sends the data of each
// event of type typ ("" for any) on a channel, closed when the stream ends.
func follow(b *testing.B, u, typ string) chan string {
	b.Helper()
	resp, err := http.Get(u)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %v %v", u, resp, err)
	}
	out := make(chan string, 16)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		d := sse.NewDecoder(resp.Body)
		for {
			ev, err := d.Next()
			if err != nil {
				return
			}
			if typ == "" || ev.Type == typ {
				out <- ev.Data
			}
		}
	}()
	b.Cleanup(func() { resp.Body.Close() })
	return out
}

// BenchmarkLiveLatency measures, in one run on one server, the time from
// sending an event to receiving it on an open stream, over loopback HTTP:
// a Durable Streams append (POST /v1/stream/...) to a live SSE read of the
// stream, and a POST /publish to GET /events. Events are sent one at a
// time, the same data (104 bytes or so) on both paths, in turns whose
// order alternates (so that neither path always follows the other), each
// request's response read to its end so that both reuse their keep-alive
// connection; p50 and p99 are reported for both, in µs. Each path takes
// turns between 32 streams (32 topics), each read on its own connection,
// so that a connection's events are several milliseconds apart: an event
// written less than a millisecond after the last on its connection waits
// for the SSE writer's coalescing window (internal/transport), which would
// otherwise decide the figures (with 8, events ~1.6 ms apart, jitter put
// about 1 % of either path's events in the window: p99s of ~1.2 ms, on
// one path or the other by chance).
func BenchmarkLiveLatency(b *testing.B) {
	srv := apptest.Start(b, func(c *config.Server) { c.Demo.Enabled = false })
	// conns is how many streams (topics) each path takes turns between.
	const conns = 32
	var ds, ev [conns]chan string
	for k := range conns {
		put, _ := http.NewRequest(http.MethodPut, srv.URL+"/v1/stream/lat"+strconv.Itoa(k), nil)
		put.Header.Set("Content-Type", "text/plain")
		resp, err := http.DefaultClient.Do(put)
		if err != nil || resp.StatusCode != http.StatusCreated {
			b.Fatalf("create: %v %v", resp, err)
		}
		resp.Body.Close()
		ds[k] = follow(b, srv.URL+"/v1/stream/lat"+strconv.Itoa(k)+"?offset=now&live=sse", "data")
		ev[k] = follow(b, srv.URL+"/events?topic=lat"+strconv.Itoa(k), "")
	}
	send := func(u, ctype, body string) {
		resp, err := http.Post(u, ctype, strings.NewReader(body))
		if err != nil || resp.StatusCode >= 300 {
			b.Fatalf("POST %s: %v %v", u, resp, err)
		}
		// Read to the end, or the connection is not reused and the next
		// send pays for a new one.
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	wait := func(ch chan string, want string) {
		for got := range ch {
			if got == want {
				return
			}
		}
		b.Fatalf("the stream ended before %q", want)
	}
	var dsLat, evLat []time.Duration
	i := 0
	for b.Loop() {
		i++
		data := strings.Repeat("x", 100) + strconv.Itoa(i)
		// Connections take turns, and after each round the order of the
		// paths turns round: a connection's events are at least 62
		// events (some milliseconds) apart, for both paths alike.
		c := i % conns
		k := strconv.Itoa(c)
		viaStream := func() {
			t0 := time.Now()
			send(srv.URL+"/v1/stream/lat"+k, "text/plain", data)
			wait(ds[c], data)
			dsLat = append(dsLat, time.Since(t0))
		}
		viaPublish := func() {
			t0 := time.Now()
			send(srv.URL+"/publish", "application/x-www-form-urlencoded", "topic=lat"+k+"&data="+data)
			wait(ev[c], data)
			evLat = append(evLat, time.Since(t0))
		}
		if i/conns%2 == 0 {
			viaStream()
			viaPublish()
		} else {
			viaPublish()
			viaStream()
		}
	}
	pct := func(l []time.Duration, p float64) float64 {
		s := slices.Clone(l)
		slices.Sort(s)
		return float64(s[min(len(s)-1, int(float64(len(s))*p))].Microseconds())
	}
	b.ReportMetric(pct(dsLat, 0.5), "ds-p50-µs")
	b.ReportMetric(pct(dsLat, 0.99), "ds-p99-µs")
	b.ReportMetric(pct(evLat, 0.5), "events-p50-µs")
	b.ReportMetric(pct(evLat, 0.99), "events-p99-µs")
}
