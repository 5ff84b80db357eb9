// Package outage reports failures that happen once per request (a
// subscription or a publish refused because the broker is down, a webhook
// that fails) in lines an operator can read during an outage: one line
// when a kind of failure starts, one summary with counts per interval
// while it lasts ("refused 57 subscriptions in the last 10s: broker
// unavailable"), one line when it stops; never one line per request. The
// counts are also a Prometheus counter, herald_failures_total{op, cause}.
//
// A kind of failure is an operation (Op) and a cause, read from the error:
// the broker unavailable, a timeout, or any other error.
package outage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldpush/herald/pubsub"
)

// Op is an operation that can fail once per request.
type Op struct {
	// Name labels the operation in metrics ("subscribe").
	Name string
	// Noun names the requests in the log, in the plural ("subscriptions").
	Noun string
	// Verb says what happened to them, in the past ("refused").
	Verb string
}

// The operations Herald reports.
var (
	// Subscribe: a subscription (SSE, WebSocket, Mercure, the demo, a chat
	// stream) refused because its history could not be read.
	Subscribe = Op{Name: "subscribe", Noun: "subscriptions", Verb: "refused"}
	// Publish: a publish (POST /publish, Mercure, POST /send, the demo)
	// refused because the broker could not store it.
	Publish = Op{Name: "publish", Noun: "publishes", Verb: "refused"}
	// Webhook: a client message the application backend did not take.
	Webhook = Op{Name: "webhook", Noun: "client messages", Verb: "not delivered to the webhook"}
	// Chat: a chat request refused (POST /chat, a stream, a cancel).
	Chat = Op{Name: "chat", Noun: "chat requests", Verb: "refused"}
	// Generation: a chat generation that ended with an error event.
	Generation = Op{Name: "chat_generation", Noun: "chat generations", Verb: "failed"}
	// Task: a demo task stopped because its events could not be published.
	Task = Op{Name: "demo_task", Noun: "demo tasks", Verb: "stopped"}
)

// Causes of failure, as metric labels.
const (
	CauseUnavailable = "broker_unavailable"
	CauseTimeout     = "timeout"
	CauseError       = "error"
)

// Cause classifies err.
func Cause(err error) string {
	switch {
	case errors.Is(err, pubsub.ErrUnavailable):
		return CauseUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return CauseTimeout
	}
	return CauseError
}

func causeText(cause string) string {
	switch cause {
	case CauseUnavailable:
		return "broker unavailable"
	case CauseTimeout:
		return "timed out"
	}
	return "error"
}

// Options configure a Reporter. A nil *Options means all defaults.
type Options struct {
	// Logger receives the lines. Default slog.Default().
	Logger *slog.Logger
	// Interval between summaries while a failure lasts; a failure that
	// does not happen for a whole interval has stopped. Default 10s.
	Interval time.Duration
}

// Reporter counts failures and logs them by kind. Create one with New and
// Close it. Its methods are safe for concurrent use, and Fail is safe on a
// nil *Reporter (it then logs every failure to slog.Default()).
//
// Lock order: Reporter.mu only; it is not held while logging.
type Reporter struct {
	log      *slog.Logger
	interval time.Duration
	counter  *prometheus.CounterVec

	mu     sync.Mutex
	kinds  map[kind]*state
	timer  *time.Timer // pending summary; nil when no failure lasts
	closed bool
}

type kind struct {
	op    Op
	cause string
}

// state is one kind of failure that is happening.
type state struct {
	since time.Time
	n     int   // in the current interval (the first one included)
	total int   // since it started
	last  error // the latest
}

var _ prometheus.Collector = (*Reporter)(nil)

// New returns a Reporter.
func New(opts *Options) *Reporter {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	return &Reporter{
		log: o.Logger, interval: o.Interval, kinds: make(map[kind]*state),
		counter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_failures_total",
			Help: "Requests refused or failed because of a failure behind them (the broker unavailable, a timeout, an error), by operation and cause; the log summarises them every 10 s instead of a line each.",
		}, []string{"op", "cause"}),
	}
}

// Fail records a failure of op caused by err: the first of its kind logs
// a line at once, the next ones are counted into the summaries.
func (r *Reporter) Fail(op Op, err error) {
	if r == nil {
		slog.Default().Warn(fmt.Sprintf("%s %s", op.Noun, op.Verb), "op", op.Name, "err", err)
		return
	}
	cause := Cause(err)
	r.counter.WithLabelValues(op.Name, cause).Inc()
	k := kind{op, cause}
	r.mu.Lock()
	st := r.kinds[k]
	started := st == nil
	if started {
		st = &state{since: time.Now()}
		r.kinds[k] = st
		if r.timer == nil && !r.closed {
			r.timer = time.AfterFunc(r.interval, r.summarise)
		}
	}
	st.total++
	st.n++
	st.last = err
	r.mu.Unlock()
	if started {
		r.log.Warn(fmt.Sprintf("%s %s: %s", op.Noun, op.Verb, causeText(cause)), "op", op.Name, "cause", cause, "err", err)
	}
}

// line is a log line to write once the lock is released.
type line struct {
	level slog.Level
	msg   string
	args  []any
}

// summarise logs what each lasting kind of failure did in the last
// interval, and the end of those that did not happen in it.
func (r *Reporter) summarise() {
	lines := r.take(false)
	for _, l := range lines {
		r.log.Log(context.Background(), l.level, l.msg, l.args...)
	}
}

// take builds the summary lines and starts the next interval; with final,
// it ends every kind (Close).
func (r *Reporter) take(final bool) []line {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []line
	for k, st := range r.kinds {
		if st.n > 0 {
			out = append(out, line{slog.LevelWarn,
				fmt.Sprintf("%s %d %s in the last %s: %s", k.op.Verb, st.n, k.op.Noun, r.interval, causeText(k.cause)),
				[]any{"op", k.op.Name, "cause", k.cause, "count", st.n, "err", st.last}})
			st.n = 0
			if !final {
				continue
			}
		}
		out = append(out, line{slog.LevelInfo,
			fmt.Sprintf("%s no longer %s (%s): %d in all over %s", k.op.Noun, k.op.Verb, causeText(k.cause), st.total, time.Since(st.since).Round(time.Second)),
			[]any{"op", k.op.Name, "cause", k.cause, "total", st.total}})
		delete(r.kinds, k)
	}
	r.timer = nil
	if len(r.kinds) > 0 && !r.closed {
		r.timer = time.AfterFunc(r.interval, r.summarise)
	}
	return out
}

// Close stops the summaries, after logging what is pending.
func (r *Reporter) Close() {
	r.mu.Lock()
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
	}
	r.mu.Unlock()
	for _, l := range r.take(true) {
		r.log.Log(context.Background(), l.level, l.msg, l.args...)
	}
}

// Describe implements prometheus.Collector.
func (r *Reporter) Describe(ch chan<- *prometheus.Desc) { r.counter.Describe(ch) }

// Collect implements prometheus.Collector.
func (r *Reporter) Collect(ch chan<- prometheus.Metric) { r.counter.Collect(ch) }
