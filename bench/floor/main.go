// Command floor is the floor of SSE fan-out for `herald bench`: a server
// that does nothing but one write(2) per subscriber per event. It speaks
// the benchmark's two endpoints:
//
//	GET  /events?topic=T   a stream of the topic's events (no chunking:
//	                       the body runs until the connection closes)
//	POST /publish          form topic=T&data=D → 200, after writing the
//	                       event to every subscriber of T, one write each
//
// No history, no ids, no queue, no keep-alive, no slow-consumer handling:
// the cost of a delivery here is the kernel's, which no server that writes
// each event to each socket can go below. docs/benchmarks.md reports
// Herald's CPU per delivery against it, in the same run.
//
//	go run ./bench/floor --addr 127.0.0.1:18702
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

type sub struct {
	raw syscall.RawConn
	nc  net.Conn
}

type server struct {
	mu     sync.Mutex
	topics map[string]map[*sub]struct{}
}

func (s *server) subscribe(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	if topic == "" {
		http.Error(w, "missing topic", http.StatusBadRequest)
		return
	}
	nc, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		nc.Close()
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		nc.Close()
		return
	}
	if _, err := nc.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n: ok\n\n")); err != nil {
		nc.Close()
		return
	}
	me := &sub{raw: raw, nc: nc}
	s.mu.Lock()
	if s.topics[topic] == nil {
		s.topics[topic] = map[*sub]struct{}{}
	}
	s.topics[topic][me] = struct{}{}
	s.mu.Unlock()
	// Wait for the client to leave, then forget it.
	go func() {
		var b [64]byte
		for {
			if _, err := nc.Read(b[:]); err != nil {
				break
			}
		}
		s.mu.Lock()
		delete(s.topics[topic], me)
		s.mu.Unlock()
		nc.Close()
	}()
}

func (s *server) publish(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ev := []byte("data: " + r.PostForm.Get("data") + "\n\n")
	s.mu.Lock()
	for _, topic := range r.PostForm["topic"] {
		for sb := range s.topics[topic] {
			// One write(2), as a blocking server's would be, without
			// waiting for a full socket buffer (the event is dropped).
			_ = sb.raw.Write(func(fd uintptr) bool {
				_, _ = syscall.Write(int(fd), ev)
				return true
			})
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"id":""}` + "\n"))
}

func main() {
	addr := flag.String("addr", "127.0.0.1:18702", "listen address")
	flag.Parse()
	s := &server{topics: map[string]map[*sub]struct{}{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", s.subscribe)
	mux.HandleFunc("POST /publish", s.publish)
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	hs := &http.Server{Addr: *addr, Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		_ = hs.Shutdown(context.Background())
	}()
	log.Printf("floor server listening on %s", *addr)
	if err := hs.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
