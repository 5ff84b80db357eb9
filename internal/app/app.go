// Package app wires Herald's server together: the broker, the hub, the HTTP
// handlers of every feature, and a graceful shutdown.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/dashboard"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/journal"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/outage"
	"github.com/heraldpush/herald/internal/transport/sse"
	"github.com/heraldpush/herald/pubsub"
)

// App is a configured Herald server. Create it with New, serve it with
// Serve (or use its Handler in tests), and Close it.
type App struct {
	cfg     config.Server
	log     *slog.Logger
	broker  pubsub.Broker
	hub     *hub.Hub
	metrics *metrics.Metrics
	handler http.Handler
	ready   atomic.Bool

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closers   []func()                    // run by Close, last first
	shutdowns []func()                    // run by Shutdown
	drainers  []func(ctx context.Context) // run first when shutting down (journal.go)
	drainOnce sync.Once

	// journal records the running work (chat answers, demo tasks) so that
	// the next start ends what a crash interrupted; nil with the memory
	// broker.
	journal *journal.Journal

	// sec holds authentication, CORS and limits (security.go).
	sec *security

	// sse writes the text/event-stream responses of every face.
	sse *sse.Server

	router *access.Router

	// hubs are the hubs of other brokers (Durable Streams'), closed with
	// the main hub.
	hubs          []*hub.Hub
	streamsBroker pubsub.Broker // Durable Streams' broker; nil when they are off

	sampler *dashboard.Sampler
	// dashboardGauges are extra values shown on the dashboard; features
	// add theirs while mounting.
	dashboardGauges map[string]func() float64
}

// New builds an App from cfg and starts its hub. The caller must Close it.
func New(ctx context.Context, cfg config.Server, log *slog.Logger) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	a := &App{cfg: cfg, log: log, dashboardGauges: make(map[string]func() float64)}
	b, err := openBroker(ctx, &cfg, log)
	if err != nil {
		return nil, err
	}
	a.broker = b
	a.hub = hub.New(b, &hub.Options{QueueBytes: int(cfg.Limits.QueueBytes), Logger: log})
	a.metrics = metrics.New(a.hub)
	a.metrics.Failures = outage.New(&outage.Options{Logger: log})
	a.metrics.Registry.MustRegister(a.metrics.Failures)
	a.onClose(a.metrics.Failures.Close)

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.hub.Run(runCtx); err != nil && !errors.Is(err, pubsub.ErrClosed) {
			log.Error("broker listener stopped", "err", err)
		}
	}()
	if err := a.initSecurity(runCtx); err != nil {
		a.Close()
		return nil, err
	}
	if a.journal, err = a.newJournal(); err != nil {
		a.Close()
		return nil, err
	}
	a.router = access.NewRouter(a.sec.policy)
	if err := a.mount(runCtx, a.router); err != nil {
		a.Close()
		return nil, err
	}
	a.openJournal(runCtx)
	a.handler = a.wrap(a.router)
	a.ready.Store(true)
	return a, nil
}

// Handler returns the App's HTTP handler.
func (a *App) Handler() http.Handler { return a.handler }

// Routes returns every route the App serves, with its policy entry.
func (a *App) Routes() []access.Entry { return a.router.Routes() }

// Policy returns the App's access policy.
func (a *App) Policy() *access.Policy { return a.sec.policy }

// Hub returns the App's hub.
func (a *App) Hub() *hub.Hub { return a.hub }

// Metrics returns the App's metrics.
func (a *App) Metrics() *metrics.Metrics { return a.metrics }

// onClose registers f to run when the App closes.
func (a *App) onClose(f func()) { a.closers = append(a.closers, f) }

// onShutdown registers f to run when the App starts shutting down: it must
// end the feature's long-lived responses.
func (a *App) onShutdown(f func()) { a.shutdowns = append(a.shutdowns, f) }

// Shutdown ends every open stream (clients reconnect and resume) and stops
// accepting subscriptions. It does not close the broker. Call Drain first
// for running work to end its streams with a final event.
func (a *App) Shutdown() {
	a.ready.Store(false)
	a.hub.Close()
	for _, h := range a.hubs {
		h.Close()
	}
	for _, f := range a.shutdowns {
		f()
	}
}

// Drain stops the running work (chat answers, demo tasks): each ends its
// stream with a final event saying it was interrupted, which reaches the
// open streams before Shutdown ends them. It waits until then or ctx ends,
// and runs once.
func (a *App) Drain(ctx context.Context) {
	a.ready.Store(false)
	a.drain(ctx)
}

// Close shuts the App down (Drain, with the shutdown timeout, then
// Shutdown) and releases the broker.
func (a *App) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Core.ShutdownTimeout)
	a.Drain(ctx)
	cancel()
	a.Shutdown()
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.cancel()
	a.wg.Wait()
	return a.broker.Close()
}

// NewServer returns an http.Server for the App with the configured timeouts.
// Streams have no server-wide write timeout: each write has its own deadline.
func (a *App) NewServer() *http.Server {
	srv := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: a.cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       a.cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	a.configureServer(srv)
	return srv
}

// Serve serves on ln until ctx ends, then shuts down gracefully: it stops
// accepting, ends open streams cleanly so that clients reconnect (and
// resume), and waits up to the shutdown timeout for requests to finish.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := a.NewServer()
	errc := make(chan error, 1)
	go func() { errc <- a.serve(srv, ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down", "timeout", a.cfg.Core.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.Core.ShutdownTimeout)
	defer cancel()
	// Running work ends its streams with a final event first, then the
	// streams end.
	a.Drain(sctx)
	a.Shutdown()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		a.log.Warn("shutdown timeout reached; closing remaining connections")
		err = srv.Close()
	}
	<-errc
	return err
}

// Run builds an App from cfg, listens on cfg.Core.Addr and serves until ctx
// ends.
func Run(ctx context.Context, cfg config.Server, log *slog.Logger) error {
	a, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := net.Listen("tcp", cfg.Core.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	a.log.Info("herald listening", "addr", ln.Addr().String(), "broker", config.RedactURL(cfg.Broker.URL))
	start := time.Now()
	err = a.Serve(ctx, ln)
	a.log.Info("herald stopped", "uptime", time.Since(start).Round(time.Second))
	return err
}
