// Package apptest starts real Herald servers on loopback for tests.
package apptest

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/app"
	"github.com/heraldpush/herald/internal/config"
)

// Server is a Herald server serving on a loopback port.
type Server struct {
	URL string
	App *app.App
	Cfg config.Server

	cancel context.CancelFunc
	done   chan error
	stop   sync.Once
}

// Config returns the server defaults, as `herald serve` with no flags has
// them, except the listen address (127.0.0.1:0).
func Config() config.Server {
	var cfg config.Server
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	cfg.Register(fs)
	if err := fs.Parse(nil); err != nil {
		panic(err)
	}
	cfg.Core.Addr = "127.0.0.1:0"
	return cfg
}

// Logger returns a logger for tests: silent unless HERALD_TEST_LOG is set.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("HERALD_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Start starts a server with the default configuration changed by mutate
// (which may be nil). It is shut down gracefully when the test ends.
func Start(t testing.TB, mutate func(*config.Server)) *Server {
	t.Helper()
	return StartLogger(t, Logger(t), mutate)
}

// StartLogger is Start with the server logging to log. With a TLS
// certificate configured, the server's URL is https.
func StartLogger(t testing.TB, log *slog.Logger, mutate func(*config.Server)) *Server {
	t.Helper()
	cfg := Config()
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := app.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("apptest: new app: %v", err)
	}
	ln, err := net.Listen("tcp", cfg.Core.Addr)
	if err != nil {
		a.Close()
		t.Fatalf("apptest: listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	scheme := "http://"
	if cfg.HTTP.TLSCert != "" {
		scheme = "https://"
	}
	s := &Server{URL: scheme + ln.Addr().String(), App: a, Cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- a.Serve(ctx, ln) }()
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the server down gracefully and waits for it. It is
// idempotent and safe for concurrent use: every caller returns once the
// server has stopped.
func (s *Server) Stop() {
	s.stop.Do(func() {
		s.cancel()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			panic("apptest: server did not stop within 30s")
		}
		s.App.Close()
		http.DefaultClient.CloseIdleConnections()
	})
}
