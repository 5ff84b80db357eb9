package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/heraldpush/herald/client"
	"github.com/heraldpush/herald/sse"
	"github.com/heraldpush/herald/sseclient"
)

func init() {
	register("subscribe", "print the events of topics as they arrive, resuming across reconnects", runSubscribe)
}

const subscribeText = `Follows topics through the server's GET /events and prints each event as it
arrives. When the connection drops or the server restarts, it reconnects and
resumes after the last event it printed; when the server cannot promise that
nothing was missed it prints the herald.reset event it sends (and a warning
on standard error). It stops when interrupted, exits 0 when the server ends
the topics (204 No Content), and fails when the server refuses the request
or cannot be reached at the start.

Formats:
  text  each event as a text/event-stream block: "id:" (when the event had
        an id line), "event:" (when not "message") and "data:" lines, then a
        blank line.
  json  one JSON object per line: {"id", "event", "data", "topic"}. The id
        is the last event ID as a browser's EventSource gives it
        (lastEventId): the last id the stream set, also for an event that
        came without an id line. The SSE stream does not say which topic an
        event belongs to, so with several topics the json format opens
        one stream per topic: an event published to two of them is then
        printed once for each, with the same id, and the order holds within
        a topic, not across topics.
`

// subscribeIdleTimeout is how long a stream may stay silent before the
// command reconnects; Herald sends a keep-alive comment every 15 s by default.
const subscribeIdleTimeout = 70 * time.Second

func runSubscribe(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "subscribe", "")
	var (
		cf     clientFlags
		lastID = fs.String("last-event-id", "", "resume after this event id (as a reconnecting client does)")
		format = fs.String("format", "text", "output format: text or json")
	)
	cf.register(fs)
	fs.Usage = clientUsage(env.Stdout, fs, "subscribe --topic T [--topic U] [--last-event-id ID] [--format text|json] [--server URL]", subscribeText)
	if err := cf.parse(fs, env, args); err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return usageErr("--format: %q is not text or json", *format)
	}

	p := &printer{w: env.Stdout, stderr: env.Stderr, json: *format == "json"}
	cl := client.New(cf.server, nil)
	// One stream for every topic, unless the json format must name the topic
	// of each event and there are several.
	groups := [][]string{cf.topics}
	if p.json && len(cf.topics) > 1 {
		groups = groups[:0]
		for _, t := range cf.topics {
			groups = append(groups, []string{t})
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, topics := range groups {
		wg.Go(func() {
			f := &follower{server: cf.server, topics: topics, p: p, cancel: cancel, multi: len(groups) > 1}
			if errs[i] = f.run(ctx, cl, *lastID); errs[i] != nil {
				cancel(errs[i]) // one stream failing ends them all
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return exitFor(err)
	}
	for _, err := range errs {
		if err != nil {
			return exitFor(err)
		}
	}
	return nil
}

// follower runs one stream of the subscribe command.
type follower struct {
	server string
	topics []string
	p      *printer
	cancel context.CancelCauseFunc
	multi  bool // one of several streams: name the topic in messages

	opened bool // a connection was open once
	lost   bool // the connection is lost and not back yet
}

func (f *follower) run(ctx context.Context, cl *client.Client, lastID string) error {
	topic := ""
	if len(f.topics) == 1 {
		topic = f.topics[0]
	}
	sc := cl.Subscribe(f.topics, &sseclient.Options{
		LastEventID: lastID,
		IdleTimeout: subscribeIdleTimeout,
		OnState:     f.onState,
	})
	for ev, err := range sc.Events(ctx) {
		if err != nil {
			var se *sseclient.StatusError
			if errors.As(err, &se) {
				return fmt.Errorf("subscribe refused%s: %s", f.which(), statusMessage(se.StatusCode, se.Message))
			}
			if ctx.Err() != nil {
				return nil // interrupted, or another stream failed
			}
			return fmt.Errorf("subscribe%s: %w", f.which(), err)
		}
		if r, ok := sseclient.AsReset(ev); ok {
			f.p.warn("herald.reset (%s)%s: events after %q may have been missed", r.Reason, f.which(), r.LastEventID)
		}
		if err := f.p.print(ev, topic); err != nil {
			return err
		}
	}
	f.p.warn("the server ended the stream%s: its topics are finished", f.which())
	return nil
}

// onState reports connection changes on standard error, and gives up when
// the server cannot be reached at all at the start.
func (f *follower) onState(s sseclient.State, err error) {
	switch {
	case s == sseclient.Open:
		if f.lost {
			f.p.warn("reconnected%s", f.which())
		}
		f.opened, f.lost = true, false
	case s == sseclient.Connecting && err != nil:
		if !f.opened && isTransport(err) {
			f.cancel(&unreachable{server: f.server, err: transportCause(err)})
			return
		}
		if !f.lost {
			f.p.warn("connection lost%s: %s; reconnecting", f.which(), strings.TrimPrefix(err.Error(), "sseclient: "))
			f.lost = true
		}
	}
}

func (f *follower) which() string {
	if f.multi {
		return fmt.Sprintf(" (topic %q)", f.topics[0])
	}
	return ""
}

// printer writes events, one whole event at a time.
type printer struct {
	mu     sync.Mutex
	w      io.Writer
	stderr io.Writer
	json   bool
	buf    []byte
}

// jsonEvent is one line of the json format.
type jsonEvent struct {
	ID    string `json:"id"`
	Event string `json:"event"`
	Data  string `json:"data"`
	Topic string `json:"topic"`
}

func (p *printer) print(ev sse.Event, topic string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		// The id is the event's last event ID, as a browser's
		// MessageEvent.lastEventId has it: the last id the stream set,
		// whether or not this event carried an id line.
		b, _ := json.Marshal(jsonEvent{ID: ev.ID, Event: ev.Type, Data: ev.Data, Topic: topic})
		p.buf = append(append(p.buf[:0], b...), '\n')
	} else {
		// The block as the server sent it: an id line only if the event
		// had one.
		id := ""
		if ev.HasID {
			id = ev.ID
		}
		out := sse.Event{ID: id, Type: ev.Type, Data: ev.Data}
		if out.Type == "message" {
			out.Type = ""
		}
		var err error
		// A decoded id or type never holds a line break, so this succeeds.
		if p.buf, err = out.AppendTo(p.buf[:0]); err != nil {
			return err
		}
	}
	if _, err := p.w.Write(p.buf); err != nil {
		return fmt.Errorf("writing the output: %w", err)
	}
	return nil
}

func (p *printer) warn(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.stderr, "herald: "+format+"\n", args...)
}
