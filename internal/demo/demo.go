// Package demo serves Herald's built-in demo: the Spring SseEmitter demo of
// the article Herald grew from (subscribe, broadcast, a simulated task with
// progress), rebuilt on Herald's hub so that its events have real ids,
// resume exactly, and a task's progress is retained.
//
// Every demo event is an ordinary hub message: broadcasts go to the topic
// "demo"; each task's PROGRESS events go to "demo" and to the task's own
// topic "demo/task/<n>" (one message, one id), retained on both; its
// COMPLETE event is published to "demo" (retained) and, as the final event,
// to "demo/task/<n>". A task the server stops (a shutdown, or a crash found
// at the next start) ends the same way with an INTERRUPTED event instead.
// GET /sse/subscribe follows "demo", or with ?task=n one task, so a page can
// follow the task it started without mixing it with others.
//
// A task's number n is the log position of a private message that
// announces it on the topic "demo/tasks": unique among every node sharing
// the broker, and growing across restarts as long as the log is kept.
package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/httpjson"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/journal"
	"github.com/heraldpush/herald/internal/outage"
	"github.com/heraldpush/herald/internal/transport"
	"github.com/heraldpush/herald/internal/transport/sse"
	"github.com/heraldpush/herald/internal/webui"
	"github.com/heraldpush/herald/pubsub"
	ssewire "github.com/heraldpush/herald/sse"
)

// Topic is the demo's topic: broadcasts and the events of every task.
const Topic = "demo"

// TaskTopic returns the topic of task n's own events.
func TaskTopic(n int) string { return "demo/task/" + strconv.Itoa(n) }

// TasksTopic carries the private messages whose positions number the
// tasks.
const TasksTopic = "demo/tasks"

// JournalKind is the kind of a task in the node's journal.
const JournalKind = "demo"

// The demo's event types and texts, as the seed article has them.
const (
	TypeConnected = "CONNECTED"
	TypeBroadcast = "BROADCAST"
	TypeProgress  = "PROGRESS"
	TypeComplete  = "COMPLETE"
	// TypeInterrupted ends a task the server stopped before it completed.
	TypeInterrupted = "INTERRUPTED"

	ConnectedText = "You are successfully connected to SSE server!"
	CompleteText  = "Task completed successfully!"
	StartedText   = "Task started!"
	// ShutdownText is the data of the INTERRUPTED event of a task stopped
	// by a graceful shutdown.
	ShutdownText = "Task interrupted: the server shut down before it completed."
	// CrashText is the data of the INTERRUPTED event of a task found
	// unfinished when the server started after a crash.
	CrashText = "Task interrupted: the server stopped before it completed."
)

// TaskHeader is the response header of /sse/start-task that names the task
// started (its number n: follow it at /sse/subscribe?task=n).
const TaskHeader = "Herald-Demo-Task"

// Options configure a Demo. Hub is required; zero values of the others mean
// their defaults.
type Options struct {
	Hub *hub.Hub
	// TaskInterval is the time between two progress steps. Default 1s.
	TaskInterval time.Duration
	// MaxTasks bounds the tasks running at once. Default 100.
	MaxTasks int
	// MaxMessageBytes bounds a broadcast message. Default 4 KiB: with the
	// broker's per-topic event limit it bounds what the demo topic holds.
	MaxMessageBytes int
	// Access decides who may read the demo's topics (access.Subscribe)
	// and write to them (access.Publish: broadcasts and tasks, charged to
	// the publish rate), on face access.FaceDemo; see Namespace. Nil lets
	// everyone (unit tests).
	Access access.Decider
	// Stream writes /sse/subscribe's streams (the server's, shared by
	// every face); nil: a server of its own with the defaults.
	Stream *sse.Server
	// Site is the set of pages the server serves, for the page's header.
	Site webui.Site
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Journal, if set, records the running tasks, and ends with an
	// INTERRUPTED event those that a crash left running when it is opened
	// (New registers the demo's handler).
	Journal *journal.Journal
}

// Demo serves the demo's endpoints and runs its tasks. Create it with New,
// Register its routes, and Close it to stop the tasks.
type Demo struct {
	o         Options
	connected []byte // the CONNECTED greeting, encoded once

	ctx    context.Context // ends when the Demo closes; tasks stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	final   context.Context // bounds the INTERRUPTED events of a shutdown
	last    pubsub.Position // newest final event of a task
	running map[int]*task   // by number
	// starting counts the tasks being numbered (they count against
	// MaxTasks).
	starting int
}

type task struct {
	n        int
	progress int // last percentage published; -1 before the first
}

// New returns a Demo.
func New(o Options) *Demo {
	if o.TaskInterval <= 0 {
		o.TaskInterval = time.Second
	}
	if o.MaxTasks <= 0 {
		o.MaxTasks = 100
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 4 << 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Stream == nil {
		o.Stream = &sse.Server{Logger: o.Logger}
	}
	greeting := ssewire.Event{Type: TypeConnected, Data: ConnectedText}
	connected, err := greeting.AppendTo(nil)
	if err != nil {
		panic("demo: " + err.Error())
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Demo{o: o, connected: connected, ctx: ctx, cancel: cancel, final: context.Background(), running: make(map[int]*task)}
	o.Journal.Handle(JournalKind, d.endInterrupted)
	return d
}

// Namespace is the demo's reserved namespace: Topic and every task's
// topic. Anyone may read it, through any face (the demo is open to anyone
// by design); only the demo's own endpoints write to it.
func Namespace() access.Namespace {
	return access.Namespace{
		Name: "the demo",
		Face: access.FaceDemo,
		Match: func(t string) bool {
			return t == Topic || t == TasksTopic || strings.HasPrefix(t, "demo/task/")
		},
		Read:     access.ReachAnyone,
		Writable: true,
	}
}

// FaceRules returns the policy's rules for the demo's face: anyone may
// write to its namespace, without a token, charged to the publish rate by
// address.
func FaceRules() access.FaceRules { return access.FaceRules{OpenWrites: true} }

// Register adds the demo's routes to reg, each with its policy entry: the
// page at / and its files, /sse/subscribe, /sse/broadcast, /sse/start-task
// and /sse/tasks.
func (d *Demo) Register(reg access.Registrar) error {
	if err := registerPage(access.With(reg, access.Route{Action: access.Public, Face: access.FaceStatic}), d.o.Site); err != nil {
		return err
	}
	reg.HandleFunc("/sse/subscribe", access.Route{Action: access.Subscribe, Face: access.FaceDemo, Topics: true}, d.subscribe)
	reg.HandleFunc("/sse/broadcast", access.Route{Action: access.Publish, Face: access.FaceDemo, Topics: true}, d.broadcast)
	reg.HandleFunc("/sse/start-task", access.Route{Action: access.Publish, Face: access.FaceDemo, Topics: true}, d.startTask)
	reg.HandleFunc("/sse/tasks", access.Route{Action: access.ReadMetadata, Face: access.FaceDemo}, d.tasks)
	return nil
}

// Drain stops the running tasks: each ends its streams with an INTERRUPTED
// event. It waits until they have, and the hub has fanned those events out
// to the streams, or until ctx ends. Later task requests get 503.
func (d *Demo) Drain(ctx context.Context) {
	d.mu.Lock()
	d.closed = true
	d.final = ctx
	d.mu.Unlock()
	d.cancel()
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return
	}
	d.mu.Lock()
	last := d.last
	d.mu.Unlock()
	if !last.IsZero() {
		_ = d.o.Hub.Sync(ctx, last)
	}
}

// Close stops the running tasks (see Drain, with 10 s for their last
// events) and waits for them.
func (d *Demo) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.Drain(ctx)
	d.wg.Wait()
}

func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m { // not HEAD: GET /sse/broadcast and /sse/start-task act
			return true
		}
	}
	access.WriteMethodNotAllowed(w, r, strings.Join(methods, ", "))
	return false
}

// ask asks the policy whether r may do action to the demo's topic.
func (d *Demo) ask(r *http.Request, action access.Action, topic string) (access.Decision, error) {
	return access.Ask(d.o.Access, r, access.Query{Action: action, Face: access.FaceDemo, Topics: []string{topic}})
}

func text(w http.ResponseWriter, s string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(s))
}

// subscribe serves GET /sse/subscribe: the CONNECTED greeting, then the
// demo topic (or, with ?task=n, task n's topic) as a resumable stream.
func (d *Demo) subscribe(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		access.WriteMethodNotAllowed(w, r, http.MethodGet)
		return
	}
	q := r.URL.Query()
	topic := Topic
	n := 0
	if vs, ok := q["task"]; ok {
		var err error
		n, err = strconv.Atoi(vs[0])
		if len(vs) != 1 || err != nil || n < 1 {
			access.Write(w, r, access.BadRequest("task: want one positive task number, got %q", strings.Join(vs, ",")))
			return
		}
		topic = TaskTopic(n)
	}
	ad, err := d.ask(r, access.Subscribe, topic)
	if err != nil {
		access.Write(w, r, err)
		return
	}
	if n > 0 {
		over, err := d.taskOver(r.Context(), n)
		switch {
		case errors.Is(err, errNoTask):
			access.Write(w, r, access.Errorf(http.StatusNotFound, "", "no such task: %d", n))
			return
		case err != nil:
			access.Write(w, r, &access.Error{Status: http.StatusServiceUnavailable, Msg: fmt.Sprintf("history unavailable: %v", err), RetryAfter: 1})
			return
		case over:
			sse.NoContent(w) // makes an EventSource stop reconnecting
			return
		}
	}
	lastID := transport.LastEventID(r)
	if lastID == "" && n > 0 {
		// A new follower of a task that has ended gets its final event
		// (COMPLETE or INTERRUPTED), so that it learns how the task ended,
		// then the stream ends; a follower that has it gets 204.
		if lastID, err = d.beforeFinal(r.Context(), topic); err != nil {
			access.Write(w, r, &access.Error{Status: http.StatusServiceUnavailable, Msg: fmt.Sprintf("history unavailable: %v", err), RetryAfter: 1})
			return
		}
	}
	sub, err := d.o.Hub.Subscribe(r.Context(), hub.Request{Topics: []string{topic}, LastEventID: lastID, CanSeePrivate: ad.CanSeePrivate})
	if err != nil {
		d.o.Stream.Refuse(w, r, err)
		return
	}
	d.o.Stream.Serve(w, r, sub, sse.Stream{Preamble: d.connected, Expires: ad.Expires})
}

var errNoTask = errors.New("no such task")

// beforeFinal returns the id just before the final event of a task's
// topic, "" while the task has none.
func (d *Demo) beforeFinal(ctx context.Context, topic string) (string, error) {
	snap, err := pubsub.LogOf(d.o.Hub.Broker(), topic).Read(ctx, pubsub.Query{Topics: []string{topic}})
	if err != nil {
		return "", err
	}
	f, ok := snap.Finals[topic]
	if !ok || f.Offset == 0 {
		return "", nil
	}
	return pubsub.Position{Epoch: f.Epoch, Offset: f.Offset - 1}.String(), nil
}

// taskOver reports whether task n has ended so long ago that its topic is
// forgotten (the stream would never end: answer 204 at once). It returns
// errNoTask for a number no task has had.
func (d *Demo) taskOver(ctx context.Context, n int) (bool, error) {
	d.mu.Lock()
	_, running := d.running[n]
	d.mu.Unlock()
	if running {
		return false, nil
	}
	topic := TaskTopic(n)
	// Task numbers are positions in TasksTopic's log; the task's own topic
	// may live on another shard, where all its events are.
	b := pubsub.LogOf(d.o.Hub.Broker(), TasksTopic)
	before := &pubsub.Position{Epoch: b.Epoch(), Offset: uint64(n - 1)}
	tb := pubsub.LogOf(d.o.Hub.Broker(), topic)
	since := before
	if tb != b {
		since = &pubsub.Position{Epoch: tb.Epoch()}
	}
	snap, err := tb.Read(ctx, pubsub.Query{Topics: []string{topic}, After: since})
	if err != nil {
		return false, err
	}
	if _, ok := snap.Finals[topic]; ok || len(snap.Events) > 0 {
		// Finished (its stream ends with the final event), or running
		// here or on another node, or left by a crash (the next start of
		// its node ends it).
		return false, nil
	}
	// Started (on another node) but no step yet, if the message that
	// numbered it is still in history.
	snap, err = b.Read(ctx, pubsub.Query{Topics: []string{TasksTopic}, After: before})
	if err != nil {
		return false, err
	}
	if uint64(n) > snap.Head.Offset {
		return false, errNoTask
	}
	if len(snap.Events) > 0 && snap.Events[0].Pos.Offset == uint64(n) {
		return false, nil
	}
	return true, nil
}

// broadcast serves GET and POST /sse/broadcast?message=X.
func (d *Demo) broadcast(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	form, err := d.form(w, r)
	if err != nil {
		access.Write(w, r, err)
		return
	}
	vals := form["message"]
	switch {
	case len(vals) == 0:
		access.Write(w, r, access.BadRequest(`missing "message" parameter, e.g. /sse/broadcast?message=hello`))
		return
	case len(vals) > 1:
		access.Write(w, r, access.BadRequest(`"message" given %d times`, len(vals)))
		return
	case vals[0] == "":
		access.Write(w, r, access.BadRequest(`"message" is empty (an event with empty data is not dispatched by EventSource)`))
		return
	case !utf8.ValidString(vals[0]):
		access.Write(w, r, access.BadRequest(`"message" is not valid UTF-8`))
		return
	case len(vals[0]) > d.o.MaxMessageBytes:
		access.Write(w, r, access.Errorf(http.StatusRequestEntityTooLarge, access.CodeTooLarge, `"message" is %d bytes, over the limit of %d (--demo-max-message-bytes)`, len(vals[0]), d.o.MaxMessageBytes))
		return
	}
	if _, err := d.ask(r, access.Publish, Topic); err != nil {
		access.Write(w, r, err)
		return
	}
	msg := vals[0]
	if _, err := d.o.Hub.Publish(r.Context(), &pubsub.Message{Topics: []string{Topic}, Type: TypeBroadcast, Data: msg}); err != nil {
		d.publishFailed(w, r, err)
		return
	}
	text(w, "Broadcast message: "+msg)
}

// form returns the request's form (the query, and for a POST an urlencoded
// body): the body is bounded by the message limit (URL-encoded, three
// bytes a byte) and refused before it is read when its Content-Length is
// over it.
func (d *Demo) form(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	return access.ReadForm(w, r, int64(3*d.o.MaxMessageBytes+4<<10))
}

func (d *Demo) publishFailed(w http.ResponseWriter, r *http.Request, err error) {
	d.o.Stream.Metrics.Failed(outage.Publish, err)
	access.Write(w, r, &access.Error{Status: http.StatusServiceUnavailable, Msg: fmt.Sprintf("cannot publish: %v", err), RetryAfter: 1})
}

// startTask serves GET and POST /sse/start-task.
func (d *Demo) startTask(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	// A task publishes a dozen events to the demo's topics: it is a
	// write, charged to the publish rate.
	if _, err := d.ask(r, access.Publish, Topic); err != nil {
		access.Write(w, r, err)
		return
	}
	d.mu.Lock()
	switch {
	case d.closed:
		d.mu.Unlock()
		access.Write(w, r, &access.Error{Status: http.StatusServiceUnavailable, Msg: "server is shutting down", RetryAfter: 1})
		return
	case len(d.running)+d.starting >= d.o.MaxTasks:
		d.mu.Unlock()
		access.Write(w, r, &access.Error{Status: http.StatusTooManyRequests, Msg: fmt.Sprintf("too many tasks running (limit %d); try again later", d.o.MaxTasks), RetryAfter: max(1, int(d.o.TaskInterval.Seconds()))})
		return
	}
	d.starting++
	d.mu.Unlock()
	n, err := d.number(r.Context())
	d.mu.Lock()
	d.starting--
	switch {
	case err != nil:
		d.mu.Unlock()
		d.publishFailed(w, r, err)
		return
	case d.closed:
		d.mu.Unlock()
		access.Write(w, r, &access.Error{Status: http.StatusServiceUnavailable, Msg: "server is shutting down", RetryAfter: 1})
		return
	}
	t := &task{n: n, progress: -1}
	d.running[t.n] = t
	d.wg.Add(1)
	d.mu.Unlock()
	go d.run(t)
	w.Header().Set(TaskHeader, strconv.Itoa(t.n))
	text(w, StartedText)
}

// number gives a new task its number: the position of a private message
// announcing it (unique on every node of the broker, and growing across
// restarts), and records it in the journal before it runs.
func (d *Demo) number(ctx context.Context) (int, error) {
	pos, err := d.o.Hub.Publish(ctx, &pubsub.Message{Topics: []string{TasksTopic}, Data: "task", Private: true})
	if err != nil {
		return 0, err
	}
	n := int(pos.Offset)
	if err := d.o.Journal.Add(ctx, journal.Item{Kind: JournalKind, ID: strconv.Itoa(n)}); err != nil {
		return 0, err
	}
	return n, nil
}

// run simulates a task as the seed does: every interval a PROGRESS event,
// 0% to 100% by tens, then COMPLETE. When the Demo closes first, it ends
// with INTERRUPTED instead.
func (d *Demo) run(t *task) {
	defer d.wg.Done()
	defer func() {
		d.mu.Lock()
		delete(d.running, t.n)
		d.mu.Unlock()
	}()
	tick := time.NewTicker(d.o.TaskInterval)
	defer tick.Stop()
	both := []string{Topic, TaskTopic(t.n)}
	for p := 0; p <= 100; p += 10 {
		select {
		case <-d.ctx.Done():
			d.end(t, TypeInterrupted, ShutdownText)
			return
		case <-tick.C:
		}
		m := &pubsub.Message{Topics: both, Type: TypeProgress, Data: fmt.Sprintf("%d%% completed", p), Retain: true}
		if _, err := d.o.Hub.Publish(d.ctx, m); err != nil {
			if d.ctx.Err() != nil {
				d.end(t, TypeInterrupted, ShutdownText)
				return
			}
			// The broker is down: the task's node ends it when it
			// starts again, if it crashes meanwhile (the journal).
			d.o.Stream.Metrics.Failed(outage.Task, fmt.Errorf("task %d: %w", t.n, err))
			return
		}
		d.mu.Lock()
		t.progress = p
		d.mu.Unlock()
	}
	d.end(t, TypeComplete, CompleteText)
}

// end publishes a task's last events, typ with data: one retained on the
// demo topic (which goes on), and the final one of the task's topic.
func (d *Demo) end(t *task, typ, data string) {
	d.mu.Lock()
	ctx := d.final // the shutdown's, once it started
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := d.o.Hub.Publish(ctx, &pubsub.Message{Topics: []string{Topic}, Type: typ, Data: data, Retain: true}); err != nil {
		d.o.Stream.Metrics.Failed(outage.Task, fmt.Errorf("task %d: %w", t.n, err))
		return
	}
	pos, err := d.o.Hub.Publish(ctx, &pubsub.Message{Topics: []string{TaskTopic(t.n)}, Type: typ, Data: data, Retain: true, Final: true})
	if err != nil {
		d.o.Stream.Metrics.Failed(outage.Task, fmt.Errorf("task %d: %w", t.n, err))
		return
	}
	d.o.Journal.Done(JournalKind, strconv.Itoa(t.n))
	d.mu.Lock()
	if pos.Epoch != d.last.Epoch || pos.Offset > d.last.Offset {
		d.last = pos
	}
	d.mu.Unlock()
}

// endInterrupted ends the tasks that a crash left running (the journal's
// leftovers) with an INTERRUPTED event, as a shutdown does. A task whose
// topic has ended meanwhile is left as it is.
func (d *Demo) endInterrupted(ctx context.Context, items []journal.Item) {
	ended := 0
	for _, it := range items {
		n, err := strconv.Atoi(it.ID)
		if err != nil || n < 1 {
			d.o.Logger.Warn("demo: journal item with an invalid task number", "id", it.ID)
			continue
		}
		topic := TaskTopic(n)
		snap, err := d.o.Hub.Broker().Read(ctx, pubsub.Query{Topics: []string{topic}})
		if err != nil {
			d.o.Logger.Warn("demo: cannot read an interrupted task's topic", "task", n, "err", err)
			continue
		}
		if _, done := snap.Finals[topic]; done {
			continue
		}
		if _, err := d.o.Hub.Publish(ctx, &pubsub.Message{Topics: []string{Topic}, Type: TypeInterrupted, Data: CrashText, Retain: true}); err != nil {
			d.o.Logger.Warn("demo: cannot end an interrupted task", "task", n, "err", err)
			continue
		}
		_, err = d.o.Hub.Publish(ctx, &pubsub.Message{Topics: []string{topic}, Type: TypeInterrupted, Data: CrashText, Retain: true, Final: true})
		switch {
		case errors.Is(err, pubsub.ErrTopicFinished):
		case err != nil:
			d.o.Logger.Warn("demo: cannot end an interrupted task", "task", n, "err", err)
		default:
			ended++
		}
	}
	if ended > 0 {
		d.o.Logger.Info("demo: ended the tasks a crash had interrupted", "count", ended)
	}
}

// TaskInfo describes a running task in the answer of GET /sse/tasks.
type TaskInfo struct {
	Task  int    `json:"task"`
	Topic string `json:"topic"`
	// Progress is the last percentage published; absent before the first.
	Progress *int `json:"progress,omitempty"`
}

// TasksResult is the answer of GET /sse/tasks.
type TasksResult struct {
	Tasks []TaskInfo `json:"tasks"`
}

// tasks serves GET /sse/tasks: the running tasks, oldest first.
func (d *Demo) tasks(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	d.mu.Lock()
	out := TasksResult{Tasks: make([]TaskInfo, 0, len(d.running))}
	for _, t := range d.running {
		info := TaskInfo{Task: t.n, Topic: TaskTopic(t.n)}
		if t.progress >= 0 {
			p := t.progress
			info.Progress = &p
		}
		out.Tasks = append(out.Tasks, info)
	}
	d.mu.Unlock()
	sort.Slice(out.Tasks, func(i, j int) bool { return out.Tasks[i].Task < out.Tasks[j].Task })
	httpjson.Write(w, http.StatusOK, out)
}
