// Command baseline is the same-run baseline for `herald bench`: a minimal
// broadcast server written with the go-sse library (github.com/tmaxmax/go-sse)
// and its Joe provider, speaking the same two endpoints Herald's benchmark
// uses:
//
//	GET  /events?topic=T   text/event-stream of the topic's events
//	POST /publish          form topic=T&data=D → 200
//
// It keeps no history and gives events no ids: it is the plain broadcast
// server the performance targets are measured against.
//
//	go run ./bench/baseline --addr 127.0.0.1:8090
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	gosse "github.com/tmaxmax/go-sse"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	flag.Parse()

	srv := &gosse.Server{
		Provider: &gosse.Joe{},
		OnSession: func(w http.ResponseWriter, r *http.Request) ([]string, bool) {
			topics := r.URL.Query()["topic"]
			if len(topics) == 0 {
				http.Error(w, "missing topic", http.StatusBadRequest)
				return nil, false
			}
			// go-sse sends the response head with the first event; send it
			// now, as Herald does, so that a subscriber knows it is
			// connected (and the benchmark can start publishing).
			w.Header().Set("Content-Type", "text/event-stream")
			if err := http.NewResponseController(w).Flush(); err != nil {
				return nil, false
			}
			return topics, true
		},
	}
	mux := http.NewServeMux()
	mux.Handle("GET /events", srv)
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		topics := r.PostForm["topic"]
		if len(topics) == 0 {
			http.Error(w, "missing topic", http.StatusBadRequest)
			return
		}
		m := &gosse.Message{}
		m.AppendData(r.PostForm.Get("data"))
		if err := srv.Publish(m, topics...); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":""}` + "\n"))
	})
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

	hs := &http.Server{Addr: *addr, Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
		hs.Shutdown(context.Background())
	}()
	log.Printf("go-sse baseline listening on %s", *addr)
	if err := hs.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
