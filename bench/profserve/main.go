// Command profserve is `herald` with Go's profiler: the same commands and
// flags, plus net/http/pprof on the address in HERALD_PPROF_ADDR (default
// 127.0.0.1:6060). It exists for profiling benchmark runs (see
// docs/benchmarks.md); do not expose it.
//
//	go build -o /tmp/profserve ./bench/profserve
//	/tmp/profserve serve --demo=false &
//	go tool pprof -seconds 20 http://127.0.0.1:6060/debug/pprof/profile
package main

import (
	"context"
	"log"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux
	"os"
	"os/signal"
	"syscall"

	"github.com/heraldpush/herald/internal/cli"
)

func main() {
	addr := os.Getenv("HERALD_PPROF_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6060"
	}
	go func() { log.Println(http.ListenAndServe(addr, nil)) }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
