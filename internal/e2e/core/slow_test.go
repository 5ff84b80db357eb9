package core_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/testkit"
)

// TestSlowSubscriberIsCutOff opens a stream from a client that never reads.
// The publisher and a normal subscriber must not notice; the slow one is
// cut off once its queue is over --queue-bytes (counted in /metrics), and
// resumes exactly from the last event it did get.
func TestSlowSubscriberIsCutOff(t *testing.T) {
	srv := start(t, func(c *config.Server) {
		c.Limits.QueueBytes = 64 << 10
		c.Core.WriteTimeout = time.Minute // the hub's queue cap cuts it, not a write deadline
	})
	c := newClient(t)
	fast := subscribe(t, c, eventsURL(srv.URL, "s"), "")
	fast.NextID(t)

	// The slow client: a tiny receive buffer, and no reads.
	d := net.Dialer{Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /events?topic=s HTTP/1.1\r\nHost: localhost\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the slow client's subscription", func() bool { return subscribers(srv, "s") == 2 })

	data := strings.Repeat("x", 16<<10)
	var ids []string
	for i := 0; srv.App.Hub().Stats().SlowDisconnects == 0; i++ {
		if i == 1000 {
			t.Fatal("1000 events of 16 KiB published and the slow subscriber is still on")
		}
		ids = append(ids, publish(t, c, srv.URL, data, "s"))
		// The normal subscriber gets every event, as it comes.
		if ev := fast.Next(t); ev.ID != ids[len(ids)-1] {
			t.Fatalf("normal subscriber got %s, want %s", ev.ID, ids[len(ids)-1])
		}
	}
	t.Logf("the slow subscriber was cut off after %d events of 16 KiB", len(ids))
	for range 5 { // and after
		ids = append(ids, publish(t, c, srv.URL, data, "s"))
		if ev := fast.Next(t); ev.ID != ids[len(ids)-1] {
			t.Fatalf("normal subscriber got %s, want %s", ev.ID, ids[len(ids)-1])
		}
	}
	m := metrics(t, c, srv.URL)
	if v := metricValue(m, "herald_slow_consumer_disconnects_total"); v != "1" {
		t.Errorf("herald_slow_consumer_disconnects_total = %q, want 1", v)
	}
	if v := metricValue(m, "herald_events_dropped_total"); v == "0" || v == "" {
		t.Errorf("herald_events_dropped_total = %q, want > 0", v)
	}

	// The slow client now reads: what it got ends cleanly, and it resumes
	// from its last id with exactly the rest.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	br := testkit.NewBlockReader(resp.Body)
	var got []string
	lastID := ""
	for {
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("slow stream after %d events: %v", len(got), err)
		}
		if b.HasID {
			lastID = b.ID
		}
		if b.HasData {
			got = append(got, b.ID)
		}
	}
	if len(got) == 0 || len(got) >= len(ids) {
		t.Fatalf("slow client got %d of %d events before the cut", len(got), len(ids))
	}
	r := subscribe(t, c, eventsURL(srv.URL, "s"), lastID)
	for len(got) < len(ids) {
		ev := r.Next(t)
		if ev.Type == "herald.reset" {
			t.Fatalf("resume after the cut: %v", ev)
		}
		got = append(got, ev.ID)
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Errorf("slow client's events before and after the cut differ from the published ones")
	}
	fast.Close()
	r.Close()
	noOpenStreams(t, c, srv, "s")
}

// A client whose connection is gone frees its subscription at once (the
// request's context ends), without waiting for a write to fail.
func TestClientGoneFreesSubscription(t *testing.T) {
	srv := start(t, nil)
	c := newClient(t)
	for range 20 {
		resp, cancel := open(t, c, eventsURL(srv.URL, "gone"), "")
		resp.Body.Close()
		cancel()
	}
	noOpenStreams(t, c, srv, "gone")
}

// TestWriteDeadline: a client that stops reading is cut off by the
// per-write deadline (--write-timeout) even when its queue never overflows,
// so a stuck connection cannot hold a stream forever.
func TestWriteDeadline(t *testing.T) {
	srv := start(t, func(c *config.Server) {
		c.Core.WriteTimeout = 300 * time.Millisecond
		c.Limits.QueueBytes = 1 << 30 // the queue never overflows
	})
	c := newClient(t)
	stuck, cancel := open(t, c, eventsURL(srv.URL, "w"), "")
	defer cancel()
	defer stuck.Body.Close()
	testkit.WaitFor(t, "the subscription", func() bool { return subscribers(srv, "w") == 1 })
	data := strings.Repeat("z", 64<<10)
	for i := 0; subscribers(srv, "w") == 1; i++ {
		if i == 2000 {
			t.Fatal("128 MB written to a client that does not read, and its stream is still open")
		}
		publish(t, c, srv.URL, data, "w")
		if i%50 == 49 { // give the write deadline a chance
			testkit.Within(100*time.Millisecond, func() bool { return subscribers(srv, "w") != 1 })
		}
	}
	// The queue (1 GiB) cannot have overflowed: the write deadline cut the
	// client off, and that is counted as a slow-consumer disconnect too.
	if st := srv.App.Hub().Stats(); st.SlowDisconnects != 1 {
		t.Errorf("slow-consumer disconnects = %d, want 1 (the write deadline)", st.SlowDisconnects)
	}
}
