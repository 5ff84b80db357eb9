package app

import (
	"context"
	"github.com/heraldpush/herald/pubsub"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/api"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/httpjson"
	"github.com/heraldpush/herald/internal/journal"
	"github.com/heraldpush/herald/internal/mercure"
	"github.com/heraldpush/herald/internal/transport/sse"
)

// Policy entries shared by several routes.
var (
	probe  = access.Route{Action: access.Probe, Face: access.FaceOps}
	static = access.Route{Action: access.Public, Face: access.FaceStatic}
)

// mount registers every endpoint on rt, each with its policy entry. Each
// feature mounts its own endpoints in its own file; a feature reaches only
// the router, so no route escapes the policy.
func (a *App) mount(ctx context.Context, rt *access.Router) error {
	cfg := &a.cfg
	// The Mercure hub's topics are reserved whether or not the endpoint is
	// on: history may hold them, and no other face may read them.
	a.sec.policy.Reserve(mercure.Namespace())
	// The nodes' work journals: the server's own, never a request's (a
	// forged entry would make the next start write to the topics it
	// names).
	a.sec.policy.Reserve(access.Namespace{Name: "the work journal", Face: access.FaceInternal, Match: access.Prefix(journal.TopicPrefix), Read: access.ReachOwnFace})
	// One server writes the text/event-stream responses of every face
	// (/events, Mercure, chat, AI SDK, demo): one engine, one set of
	// protocol bits.
	a.sse = &sse.Server{
		Retry:        cfg.Core.Retry,
		KeepAlive:    cfg.Core.KeepAlive,
		WriteTimeout: cfg.Core.WriteTimeout,
		Metrics:      a.metrics,
		Logger:       a.log,
	}
	events := &sse.Handler{
		Hub:       a.hub,
		Server:    a.sse,
		MaxTopics: cfg.Limits.MaxTopics,
		Access:    a.sec.policy,
	}
	rt.Handle("/events", access.Route{Action: access.Subscribe, Face: access.FaceEvents, Topics: true}, events)
	// Streams on the lean path (connections taken over from net/http) are
	// not requests http.Server.Shutdown waits for: wait for them here, once
	// the hub is closed.
	a.onShutdown(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Core.ShutdownTimeout)
		defer cancel()
		_ = a.sse.Shutdown(ctx)
	})
	rt.Handle("/publish", access.Route{Action: access.Publish, Face: access.FacePublish, Topics: true}, &api.Publisher{
		Hub:          a.hub,
		MaxDataBytes: int(cfg.Limits.MaxDataBytes),
		MaxTopics:    cfg.Limits.MaxTopics,
		MaxBatch:     cfg.Limits.MaxBatch,
		Metrics:      a.metrics,
		Logger:       a.log,
		Access:       a.sec.policy,
	})
	rt.HandleFunc("GET /ping", probe, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	})
	rt.HandleFunc("GET /healthz", probe, func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	rt.HandleFunc("GET /readyz", probe, func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			access.Write(w, r, &access.Error{Status: http.StatusServiceUnavailable, Msg: "not ready: shutting down", RetryAfter: 1})
			return
		}
		// Unauthenticated: the broker is shown without credentials.
		a.readyz(w, r)
	})
	rt.Handle("GET /metrics", probe, a.metrics.Handler())

	for _, m := range []func(context.Context, *access.Router) error{
		a.mountDemo, a.mountWS, a.mountChat, a.mountMercure, a.mountStreams, a.mountOps, a.mountPages,
	} {
		if err := m(ctx, rt); err != nil {
			return err
		}
	}
	rt.HandleFunc("/", static, a.notFound)
	return nil
}

func (a *App) notFound(w http.ResponseWriter, r *http.Request) {
	access.Write(w, r, access.Errorf(http.StatusNotFound, "", "no such endpoint: %s %s", r.Method, r.URL.Path))
}

// readyz answers GET /readyz: ready (200) until the server shuts down,
// with the broker (without credentials) and its epoch; with several
// shards, each shard's epoch, whether it answers (a read within a second)
// and whether this node listens to it now, and "degraded" when one does
// not answer (its topics get 503; the others work). When Durable Streams
// are served, "streams" tells whether each of their brokers' shards
// answers; a streams shard that does not leaves the status alone (only
// its streams fail).
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	type shardState struct {
		Shard     int    `json:"shard"`
		Epoch     string `json:"epoch"`
		Available bool   `json:"available"`
		Listening bool   `json:"listening"`
		Error     string `json:"error,omitempty"`
	}
	body := map[string]any{"status": "ready", "broker": config.Redact("broker", strings.Join(a.cfg.Broker.All(), " ")), "epoch": a.broker.Epoch()}
	if sb := a.streamsBroker; sb != nil {
		body["streams"] = a.streamsState(r.Context(), sb)
	}
	sb, ok := a.broker.(pubsub.Sharded)
	if !ok {
		httpjson.Write(w, http.StatusOK, body)
		return
	}
	shards := sb.Shards()
	states := make([]shardState, len(shards))
	listening := a.hub.Listening()
	var wg sync.WaitGroup
	for k, s := range shards {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(r.Context(), time.Second)
			defer cancel()
			st := shardState{Shard: k, Epoch: s.Epoch(), Listening: listening[k], Available: true}
			if _, err := s.Read(ctx, pubsub.Query{Topics: []string{"herald/readyz"}}); err != nil {
				st.Available, st.Error = false, "unavailable"
			}
			states[k] = st
		})
	}
	wg.Wait()
	for _, st := range states {
		if !st.Available {
			body["status"] = "degraded"
		}
	}
	body["shards"] = states
	httpjson.Write(w, http.StatusOK, body)
}

// streamsShard is one shard of the Durable Streams broker in /readyz.
type streamsShard struct {
	Shard     int    `json:"shard"`
	Epoch     string `json:"epoch"`
	Available bool   `json:"available"`
}

// streamsState reads each shard of the streams broker within a second.
func (a *App) streamsState(ctx context.Context, b pubsub.Broker) []streamsShard {
	shards := []pubsub.Broker{b}
	if s, ok := b.(pubsub.Sharded); ok {
		shards = s.Shards()
	}
	out := make([]streamsShard, len(shards))
	var wg sync.WaitGroup
	for k, s := range shards {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			c, ok := s.(pubsub.Conditional)
			st := streamsShard{Shard: k, Epoch: s.Epoch(), Available: ok}
			if ok {
				if _, _, err := c.ReadTopic(ctx, "herald/readyz", pubsub.Position{}, 1); err != nil {
					st.Available = false
				}
			}
			out[k] = st
		})
	}
	wg.Wait()
	return out
}
