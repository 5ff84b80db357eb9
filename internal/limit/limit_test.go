package limit

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testkit"
)

func TestConcurrency(t *testing.T) {
	c := NewConcurrency(2)
	r1, ok1 := c.Acquire("a")
	_, ok2 := c.Acquire("a")
	_, ok3 := c.Acquire("a")
	_, okB := c.Acquire("b")
	if !ok1 || !ok2 || ok3 || !okB {
		t.Fatalf("acquire: %v %v %v %v", ok1, ok2, ok3, okB)
	}
	r1()
	r1() // a second release does nothing
	if c.Count("a") != 1 {
		t.Fatalf("count %d after release", c.Count("a"))
	}
	if _, ok := c.Acquire("a"); !ok {
		t.Fatal("slot not freed")
	}
	if _, ok := NewConcurrency(0).Acquire("x"); !ok {
		t.Fatal("0 must mean no limit")
	}
}

func TestRate(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewRate(2, 3)
	r.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if ok, _ := r.Allow("k"); !ok {
			t.Fatalf("burst event %d refused", i)
		}
	}
	ok, wait := r.Allow("k")
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("over the burst: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := r.Allow("other"); !ok {
		t.Fatal("keys share a bucket")
	}
	now = now.Add(600 * time.Millisecond)
	if ok, _ := r.Allow("k"); !ok {
		t.Fatal("not refilled")
	}
	// Idle buckets are forgotten.
	now = now.Add(time.Hour)
	r.Allow("fresh")
	if n := r.Len(); n != 1 {
		t.Fatalf("%d buckets after an hour idle, want 1", n)
	}
	if ok, _ := NewRate(0, 1).Allow("x"); !ok {
		t.Fatal("rate 0 must mean no limit")
	}
}

func TestListenerRefusesOverMax(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int32
	l := NewListener(ln, ListenerOptions{Max: 1, Refusal: []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"), OnRefuse: func() { refused.Add(1) }})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ConnState: l.ConnState}
	go srv.Serve(l)
	defer srv.Close()
	c1, _ := net.Dial("tcp", ln.Addr().String())
	defer c1.Close()
	c1.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	if resp, err := http.ReadResponse(bufio.NewReader(c1), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first connection: %v", err)
	}
	c2, _ := net.Dial("tcp", ln.Addr().String())
	defer c2.Close()
	c2.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	c2.SetDeadline(time.Now().Add(testkit.Timeout))
	resp, err := http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil || resp.StatusCode != 503 || refused.Load() != 1 {
		t.Fatalf("second connection: %v %v, refused %d", resp, err, refused.Load())
	}
	c1.Close()
	if !testkit.Within(testkit.Timeout, func() bool { return l.Open() == 0 }) {
		t.Fatalf("%d open after close", l.Open())
	}
	if !strings.Contains(ln.Addr().String(), "127.0.0.1") {
		t.Fatal("unexpected address")
	}
}
