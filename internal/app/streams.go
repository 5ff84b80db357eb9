package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/dssub"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/streams"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/bolt"
	"github.com/heraldpush/herald/pubsub/memory"
	natsbroker "github.com/heraldpush/herald/pubsub/nats"
	redisbroker "github.com/heraldpush/herald/pubsub/redis"
)

// StreamsPrefix is the URL path of Durable Streams.
const StreamsPrefix = "/v1/stream/"

// mountStreams serves Durable Streams at /v1/stream/* (docs/durable-streams.md)
// from a broker of their own, beside the main one and of the same kind,
// with no history limits: memory, streams.db in --data-dir, the Redis key
// prefix "<prefix>:streams", the JetStream stream "<name>_STREAMS"; with
// --broker-shards N, one per shard, and a stream lives on its path's shard.
func (a *App) mountStreams(ctx context.Context, rt *access.Router) error {
	c := &a.cfg
	// The streams' topics are reserved whether or not the endpoint is on:
	// tokens name streams by them, and no other face may use them.
	a.sec.policy.Reserve(access.Namespace{Name: "durable streams", Face: access.FaceStreams, Match: access.Prefix(append([]string{streams.TopicPrefix, "ds-refs/"}, dssub.Namespaces()...)...),
		Read: access.ReachOwnFace, Writable: true, Path: StreamsPrefix})
	if c.Streams.Disable {
		return nil
	}
	a.sec.policy.SetFace(access.FaceStreams, access.FaceRules{AnonymousReads: c.Streams.AnonymousReads})
	b, err := openStreamsBroker(ctx, c, a.log)
	if err != nil {
		return err
	}
	h := hub.New(b, &hub.Options{QueueBytes: int(c.Limits.QueueBytes), Logger: a.log})
	// The subscriptions (internal/dssub) hear of every write to a stream
	// made on this node; the manager is made once the streams are.
	var subs *dssub.Manager
	svc, err := streams.New(b, streams.Options{Hub: h, Logger: a.log.With("component", "streams"), OnWrite: func(topic string) { subs.Notify(topic) }})
	if err != nil {
		_ = b.Close()
		return fmt.Errorf("durable streams: %w", err)
	}
	subs, err = dssub.Open(ctx, b, svc, dssub.Options{Logger: a.log.With("component", "ds-subscriptions"), KeyFile: c.Streams.WebhookKey,
		URLPolicy: dssub.URLPolicy{Allow: c.Streams.WebhookAllowed()}, Prefix: StreamsPrefix, TopicPrefix: streams.TopicPrefix})
	if err != nil {
		_ = b.Close()
		return fmt.Errorf("durable streams: subscriptions: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{}, 3)
	go func() {
		defer func() { done <- struct{}{} }()
		if err := h.Run(runCtx); err != nil && !errors.Is(err, pubsub.ErrClosed) {
			a.log.Error("durable streams: broker listener stopped", "err", err)
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		svc.Run(runCtx, time.Second)
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		subs.Run(runCtx)
	}()
	// Live reads end with the hub, before the shared SSE server waits for
	// its streams (Shutdown); the broker closes with the App.
	a.hubs = append(a.hubs, h)
	a.streamsBroker = b
	a.onClose(func() {
		cancel()
		<-done
		<-done
		<-done
		subs.Close()
		_ = b.Close()
	})
	maxBody := int64(c.Streams.MaxBody)
	if natsMax := int64(natsAppendMax); usesNATS(c) && maxBody > natsMax {
		// One append is one JetStream message: NATS's max_payload (1 MiB
		// by default) bounds it, with room for its headers.
		a.log.Info("durable streams: --ds-max-body capped to fit NATS's max_payload", "max_body", natsMax)
		maxBody = natsMax
	}
	handler := &streams.Handler{
		Service:         svc,
		Access:          a.sec.policy,
		SSE:             a.sse,
		Prefix:          StreamsPrefix,
		LongPollTimeout: c.Streams.LongPollTimeout,
		SSEMaxAge:       c.Streams.SSEMaxAge,
		MaxBody:         maxBody,
		Private:         a.sec.authz.Subscriber != nil && !c.Streams.AnonymousReads,
	}
	face := func(action access.Action, topics bool) access.Route {
		return access.Route{Action: action, Face: access.FaceStreams, Topics: topics}
	}
	rt.Handle("GET "+StreamsPrefix, face(access.Subscribe, true), handler) // and HEAD
	rt.Handle("PUT "+StreamsPrefix, face(access.Publish, true), handler)
	rt.Handle("POST "+StreamsPrefix, face(access.Publish, true), handler)
	rt.Handle("DELETE "+StreamsPrefix, face(access.Publish, true), handler)
	rt.Handle(StreamsPrefix, face(access.Public, false), handler) // 405
	subs.Mount(rt, a.sec.policy)
	return nil
}

// natsAppendMax is the largest append on a NATS streams broker: NATS's
// default max_payload (1 MiB) less room for a message's headers.
const natsAppendMax = 1<<20 - 64<<10

// usesNATS reports whether the brokers are NATS JetStream.
func usesNATS(c *config.Server) bool {
	for _, u := range c.Broker.All() {
		if strings.HasPrefix(u, "nats://") || strings.HasPrefix(u, "tls://") {
			return true
		}
	}
	return false
}

// openStreamsBroker opens the streams broker: like the main broker (see
// openBroker), with its own storage and no history limits. Its shards
// record their count like the main broker's (see openShards), so that
// nodes with different --broker-shards refuse to start rather than look
// for a stream on another shard.
func openStreamsBroker(ctx context.Context, cfg *config.Server, log *slog.Logger) (pubsub.Broker, error) {
	b, err := openShards(ctx, cfg, func(u string, k int) (pubsub.Broker, error) {
		b, err := openStreamsShard(ctx, cfg, u, k, log)
		if err != nil {
			return nil, fmt.Errorf("shard %d: %w", k, err)
		}
		if _, ok := b.(pubsub.Conditional); !ok {
			_ = b.Close()
			return nil, fmt.Errorf("broker %T: %w", b, streams.ErrNotConditional)
		}
		return b, nil
	})
	if err != nil {
		return nil, fmt.Errorf("durable streams: %w", err)
	}
	return b, nil
}

// openStreamsShard opens shard k of the streams broker on the broker at
// url.
func openStreamsShard(ctx context.Context, cfg *config.Server, u string, k int, log *slog.Logger) (pubsub.Broker, error) {
	var none pubsub.Retention // streams live until deleted or expired
	switch u {
	case "", "memory":
		if dir := cfg.Broker.DataDir; dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("--data-dir: %w", err)
			}
			name := "streams.db"
			if k > 0 {
				name = "streams." + strconv.Itoa(k) + ".db"
			}
			b, err := bolt.Open(filepath.Join(dir, name), &bolt.Options{Retention: none, Logger: log})
			if err != nil {
				return nil, fmt.Errorf("--data-dir: %w", err)
			}
			return b, nil
		}
		return memory.New(&memory.Options{Retention: none}), nil
	}
	switch {
	case strings.HasPrefix(u, "redis://"), strings.HasPrefix(u, "rediss://"):
		prefix := cfg.Broker.Prefix + ":streams"
		if k > 0 {
			prefix += "#" + strconv.Itoa(k)
		}
		b, err := redisbroker.Open(ctx, u, &redisbroker.Options{Prefix: prefix, Retention: none, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--broker %s: %w", config.RedactURL(u), err)
		}
		return b, nil
	case strings.HasPrefix(u, "nats://"), strings.HasPrefix(u, "tls://"):
		stream := cfg.Broker.Stream + "_STREAMS"
		if k > 0 {
			stream += "_" + strconv.Itoa(k)
		}
		b, err := natsbroker.Open(ctx, u, &natsbroker.Options{Stream: stream, Retention: none, Replicas: cfg.Broker.Replicas, Timeout: cfg.Broker.Timeout, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("--broker %s: %w", config.RedactURL(u), err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("--broker: unsupported broker %q", config.RedactURL(u))
}
