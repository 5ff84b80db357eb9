// Command herald is a real-time push server: Server-Sent Events first,
// WebSocket second, with exact resume. Run `herald serve` to start it and
// `herald --help` for everything else.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/heraldpush/herald/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
