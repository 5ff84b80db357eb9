package sseclient_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/sse"
	"github.com/heraldpush/herald/sseclient"
)

// These tests run the client against real Herald servers over loopback.

func fastRetry(cfg *config.Server) { cfg.Core.Retry = 20 * time.Millisecond }

// newTransport returns a transport of the test's own, closed at its end.
func newTransport(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// reader collects a client's events in a goroutine.
type reader struct {
	mu     sync.Mutex
	events []sse.Event
	err    error
	more   chan struct{}
	done   chan struct{}
}

func startReader(ctx context.Context, c *sseclient.Client) *reader {
	r := &reader{more: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ev, err := range c.Events(ctx) {
			r.mu.Lock()
			if err != nil {
				r.err = err
			} else {
				r.events = append(r.events, ev)
			}
			r.mu.Unlock()
			select {
			case r.more <- struct{}{}:
			default:
			}
		}
	}()
	return r
}

// waitFor waits until ok holds for the events read so far.
func (r *reader) waitFor(t *testing.T, what string, ok func([]sse.Event) bool) []sse.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		evs := append([]sse.Event(nil), r.events...)
		err := r.err
		r.mu.Unlock()
		if ok(evs) {
			return evs
		}
		if err != nil {
			t.Fatalf("waiting for %s: the client stopped: %v", what, err)
		}
		select {
		case <-r.more:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; got %d events", what, len(evs))
		}
	}
}

// opened returns an OnState callback and a channel that receives a value
// each time the client's connection opens (Herald has registered the
// subscription by then).
func opened() (func(sseclient.State, error), chan struct{}) {
	ch := make(chan struct{}, 100)
	return func(s sseclient.State, _ error) {
		if s == sseclient.Open {
			ch <- struct{}{}
		}
	}, ch
}

func waitOpen(t *testing.T, ch chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for the connection to open")
	}
}

func lastData(want string) func([]sse.Event) bool {
	return func(evs []sse.Event) bool { return len(evs) > 0 && evs[len(evs)-1].Data == want }
}

// checkSequence checks that the message events' data are exactly
// first..last, each once and in order.
func checkSequence(t *testing.T, evs []sse.Event, first, last int) {
	t.Helper()
	next := first
	for _, ev := range evs {
		if ev.Type != "message" {
			continue
		}
		n, err := strconv.Atoi(ev.Data)
		if err != nil || n != next {
			t.Fatalf("event %q (id %s) where %d was due: lost or duplicated", ev.Data, ev.ID, next)
		}
		next++
	}
	if next != last+1 {
		t.Fatalf("events end at %d, want %d", next-1, last)
	}
}

func publishRange(t *testing.T, pub *client.Client, topic string, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if _, err := publish(t.Context(), pub, topic, strconv.Itoa(i), nil); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
}

// publish publishes, waiting out the server's publish rate limit.
func publish(ctx context.Context, pub *client.Client, topic, data string, opts *client.PublishOptions) (string, error) {
	for {
		id, err := pub.Publish(ctx, topic, data, opts)
		var se *client.StatusError
		if !errors.As(err, &se) || se.StatusCode != http.StatusTooManyRequests {
			return id, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(se.RetryAfter):
		}
	}
}

// TestRestartInProcess stops a Herald server mid-stream and starts a new
// one on the same address. In memory, the history is lost with the first
// server (the epoch changes), so the client must get herald.reset
// epoch-changed, then everything the new server has, exactly once. With a
// durable store (--data-dir) the client resumes with no reset, no loss and
// no duplicate.
func TestRestartInProcess(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(map[bool]string{false: "memory", true: "durable"}[durable], func(t *testing.T) {
			dir := t.TempDir()
			setup := func(addr string) func(*config.Server) {
				return func(cfg *config.Server) {
					fastRetry(cfg)
					if addr != "" {
						cfg.Core.Addr = addr
					}
					if durable {
						cfg.Broker.DataDir = dir
					}
				}
			}
			srv := apptest.Start(t, setup(""))
			hc := newTransport(t)
			onState, open := opened()
			c := sseclient.New(srv.URL+"/events?topic=t", &sseclient.Options{HTTPClient: hc, InitialDelay: 10 * time.Millisecond, OnState: onState})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			r := startReader(ctx, c)
			waitOpen(t, open)

			publishRange(t, client.New(srv.URL, &client.Options{HTTPClient: hc}), "t", 1, 10)
			r.waitFor(t, "event 10", lastData("10"))
			lastBefore := c.LastEventID()

			srv.Stop()
			// The publisher's idle connection died with the server (a POST
			// on it would fail, and is not retried: it is not idempotent).
			hc.CloseIdleConnections()
			srv2 := apptest.Start(t, setup(strings.TrimPrefix(srv.URL, "http://")))
			// Published before the client is back: it gets these from history.
			publishRange(t, client.New(srv2.URL, &client.Options{HTTPClient: hc}), "t", 11, 20)
			evs := r.waitFor(t, "event 20", lastData("20"))
			cancel()
			<-r.done

			var resets []sseclient.Reset
			at := -1
			for i, ev := range evs {
				if rs, ok := sseclient.AsReset(ev); ok {
					resets = append(resets, rs)
					at = i
				}
			}
			switch {
			case durable && len(resets) != 0:
				t.Fatalf("resets %+v, want none: the history survived", resets)
			case !durable && (len(resets) != 1 || resets[0].Reason != sseclient.ReasonEpochChanged || resets[0].LastEventID != lastBefore):
				t.Fatalf("resets %+v, want one epoch-changed from %q", resets, lastBefore)
			case !durable && (evs[at-1].Data != "10" || evs[at+1].Data != "11"):
				t.Errorf("the reset is not between 10 and 11: %q, %q", evs[at-1].Data, evs[at+1].Data)
			}
			checkSequence(t, evs, 1, 20)
			if r.err != context.Canceled {
				t.Errorf("the iteration ended with %v, want context.Canceled", r.err)
			}
		})
	}
}

// TestResumeThroughCuttingProxy reads a stream through a proxy that cuts
// every connection after a random number of bytes, mid-event as often as
// not, while events are published concurrently. The client must end with
// every event exactly once and no reset: nothing was lost on the server.
func TestResumeThroughCuttingProxy(t *testing.T) {
	srv := apptest.Start(t, fastRetry)
	proxy := newCuttingProxy(t, strings.TrimPrefix(srv.URL, "http://"))
	hc := newTransport(t)
	pub := client.New(srv.URL, &client.Options{HTTPClient: hc})

	// One client follows one topic, another two topics with one id.
	onState1, open1 := opened()
	onState2, open2 := opened()
	single := sseclient.New(proxy.url+"/events?topic=a", &sseclient.Options{HTTPClient: hc, InitialDelay: 5 * time.Millisecond, OnState: onState1})
	double := sseclient.New(proxy.url+"/events?topic=a&topic=b", &sseclient.Options{HTTPClient: hc, InitialDelay: 5 * time.Millisecond, OnState: onState2})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r1, r2 := startReader(ctx, single), startReader(ctx, double)
	waitOpen(t, open1)
	waitOpen(t, open2)

	const n = 300
	errc := make(chan error, 1)
	go func() {
		for i := 1; i <= n; i++ {
			var opts *client.PublishOptions
			if i%3 == 0 {
				opts = &client.PublishOptions{Topics: []string{"b"}} // to a and b: once for double
			}
			if _, err := publish(ctx, pub, "a", strconv.Itoa(i), opts); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	ev1 := r1.waitFor(t, "the last event", lastData(strconv.Itoa(n)))
	ev2 := r2.waitFor(t, "the last event", lastData(strconv.Itoa(n)))
	cancel()
	<-r1.done
	<-r2.done
	for _, evs := range [][]sse.Event{ev1, ev2} {
		for _, ev := range evs {
			if _, ok := sseclient.AsReset(ev); ok {
				t.Errorf("unexpected reset %q", ev.Data)
			}
		}
		checkSequence(t, evs, 1, n)
	}
	t.Logf("the proxy cut %d connections", proxy.cuts())
	if cuts := proxy.cuts(); cuts < 5 {
		t.Errorf("the proxy cut only %d connections; the test proves little", cuts)
	}
}

// TestHistoryTruncated resumes from a position the server's history no
// longer reaches: the client gets herald.reset history-truncated, then what
// history still has.
func TestHistoryTruncated(t *testing.T) {
	srv := apptest.Start(t, func(cfg *config.Server) { fastRetry(cfg); cfg.History.MaxEvents = 5 })
	hc := newTransport(t)
	pub := client.New(srv.URL, &client.Options{HTTPClient: hc})
	first, err := pub.Publish(t.Context(), "t", "1", nil)
	if err != nil {
		t.Fatal(err)
	}
	publishRange(t, pub, "t", 2, 20)
	c := pub.Subscribe([]string{"t"}, &sseclient.Options{LastEventID: first})
	var got []string
	for ev, err := range c.Events(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		if r, ok := sseclient.AsReset(ev); ok {
			got = append(got, "reset:"+r.Reason+":"+r.LastEventID)
			continue
		}
		got = append(got, ev.Data)
		if ev.Data == "20" {
			break
		}
	}
	want := "reset:history-truncated:" + first + " 16 17 18 19 20"
	if strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", strings.Join(got, " "), want)
	}
}

// TestFinishedTopicEndsIteration: after a final event the server ends the
// stream and answers the reconnection with 204, which ends the iteration
// without an error.
func TestFinishedTopicEndsIteration(t *testing.T) {
	srv := apptest.Start(t, fastRetry)
	hc := newTransport(t)
	pub := client.New(srv.URL, &client.Options{HTTPClient: hc})
	publishRange(t, pub, "job", 1, 2)
	if _, err := pub.Publish(t.Context(), "job", "3", &client.PublishOptions{Final: true}); err != nil {
		t.Fatal(err)
	}
	var states []string
	c := pub.Subscribe([]string{"job"}, &sseclient.Options{
		InitialDelay: time.Millisecond,
		OnState:      func(s sseclient.State, err error) { states = append(states, s.String()) },
	})
	// A new subscriber of a finished topic: 204 at once.
	for _, err := range c.Events(t.Context()) {
		t.Fatalf("yielded %v from a finished topic", err)
	}
	if strings.Join(states, " ") != "connecting closed" {
		t.Errorf("states %v", states)
	}
	// One that follows a topic until its end gets every event, then 204.
	onState, open := opened()
	c = pub.Subscribe([]string{"job2"}, &sseclient.Options{InitialDelay: time.Millisecond, OnState: onState})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := startReader(ctx, c)
	waitOpen(t, open)
	publishRange(t, pub, "job2", 1, 2)
	if _, err := pub.Publish(t.Context(), "job2", "3", &client.PublishOptions{Final: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the iteration did not end after the final event")
	}
	if r.err != nil {
		t.Errorf("ended with %v, want nil", r.err)
	}
	checkSequence(t, r.events, 1, 3)
}

// cuttingProxy forwards connections to a server and cuts each after a
// random number of bytes from the server (at least 300, so that every
// connection gets past its headers and makes progress).
type cuttingProxy struct {
	url string
	wg  sync.WaitGroup
	mu  sync.Mutex
	n   int
}

func (p *cuttingProxy) cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

func newCuttingProxy(t *testing.T, target string) *cuttingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cuttingProxy{url: "http://" + ln.Addr().String()}
	var conns sync.Map
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				down.Close()
				continue
			}
			conns.Store(down, up)
			limit := int64(300 + rand.IntN(1500))
			p.wg.Add(2)
			go func() {
				defer p.wg.Done()
				io.Copy(up, down)
				up.Close()
			}()
			go func() {
				defer p.wg.Done()
				n, _ := io.Copy(down, io.LimitReader(up, limit))
				if n == limit {
					p.mu.Lock()
					p.n++
					p.mu.Unlock()
				}
				down.Close()
				up.Close()
				conns.Delete(down)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, v any) bool {
			k.(net.Conn).Close()
			v.(net.Conn).Close()
			return true
		})
		p.wg.Wait()
	})
	return p
}
