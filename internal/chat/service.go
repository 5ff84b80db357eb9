package chat

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/journal"
	"github.com/heraldpush/herald/internal/llm"
	"github.com/heraldpush/herald/internal/outage"
	"github.com/heraldpush/herald/internal/transport/sse"
	"github.com/heraldpush/herald/pubsub"
)

// Event types of a chat stream.
const (
	// EventToken carries the next piece of the answer, as plain text.
	EventToken = "token"
	// EventDone ends the stream; its data is a JSON Done.
	EventDone = "done"
	// EventError ends the stream after a failure; its data is a JSON Error.
	EventError = "error"
)

// TopicPrefix starts the topic of every chat stream: "chat/<id>".
const TopicPrefix = "chat/"

// IsTopic reports whether topic is the topic of a chat stream: TopicPrefix
// and an id of the form the service makes (26 characters of base32). Other
// topics under "chat/" are ordinary topics.
func IsTopic(topic string) bool {
	return strings.HasPrefix(topic, TopicPrefix) && validID(topic[len(TopicPrefix):])
}

// CodeInterrupted is the Code of an error event that ends a generation the
// server stopped: it was shutting down, or it had crashed and ended the
// generation when it started again. Asking again may work.
const CodeInterrupted = "interrupted"

// JournalKind is the kind of a generation in the node's journal.
const JournalKind = "chat"

// Done is the data of a done event.
type Done struct {
	// Text is the whole answer.
	Text string `json:"text"`
	// FinishReason tells why the answer ended: the upstream's reason
	// ("stop", "length", ...) or "stopped" after a cancel.
	FinishReason string `json:"finishReason"`
	// Tokens is the number of tokens streamed.
	Tokens int `json:"tokens"`
	// Usage is the upstream's token accounting, when it gave one.
	Usage *llm.Usage `json:"usage,omitempty"`
	// Stopped reports that the generation was cancelled.
	Stopped bool `json:"stopped"`
	// Model that answered.
	Model string `json:"model"`
	// Conversation is the request's conversation id, if it had one.
	Conversation string `json:"conversation,omitempty"`
}

// Error is the data of an error event.
type Error struct {
	// Message says what went wrong, fit to show a user.
	Message string `json:"message"`
	// Code names the kind of failure a client may act on: CodeInterrupted,
	// or empty.
	Code string `json:"code,omitempty"`
	// Text is the partial answer streamed before the failure.
	Text string `json:"text"`
	// Tokens is the number of tokens streamed.
	Tokens int `json:"tokens"`
	// Model that was answering.
	Model string `json:"model"`
	// Conversation is the request's conversation id, if it had one.
	Conversation string `json:"conversation,omitempty"`
}

// Limits bound what clients may ask of the service. Zero fields mean no
// limit, except where noted.
type Limits struct {
	// MaxPromptBytes bounds the total size of a request's messages.
	MaxPromptBytes int
	// MaxMessages bounds the messages of one request.
	MaxMessages int
	// MaxConcurrent bounds the generations running at once.
	MaxConcurrent int
	// MaxConcurrentPerClient bounds one client's running generations.
	MaxConcurrentPerClient int
	// MaxTokens bounds an answer. Default 960.
	MaxTokens int
	// MaxDuration bounds a generation's running time. Default 10 minutes.
	MaxDuration time.Duration
	// AllowedModels are the models a request may name besides the
	// provider's default.
	AllowedModels []string
}

// Options configure a Service.
type Options struct {
	// Hub publishes and serves the streams. Required.
	Hub *hub.Hub
	// Provider answers. Required.
	Provider llm.Provider
	// Limits on requests.
	Limits Limits
	// HistoryMaxEvents is the broker's per-topic history limit (0: none);
	// a generation publishes at most this many events.
	HistoryMaxEvents int
	// Retention is how long a finished answer stays available. After it
	// the service forgets the stream and purges its topic (when the broker
	// can). Zero keeps it as long as the broker does.
	Retention time.Duration
	// Stream writes the text/event-stream responses (the server's, shared
	// by every face); nil: a server of its own with the defaults.
	Stream *sse.Server
	// Access decides whether a request may start (access.Create), watch
	// (access.Subscribe) or stop (access.Cancel) the stream of a topic,
	// on face access.FaceChat; it names the requester (the owner of what
	// it starts) and its address (for the per-client limit). Nil lets
	// every request in, all from one client (unit tests).
	Access access.Decider
	// Registerer, if set, gets the service's metrics.
	Registerer prometheus.Registerer
	// Journal, if set, records the running generations, and ends with an
	// interrupted error event those that a crash left running when it is
	// opened (New registers the service's handler).
	Journal *journal.Journal
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Errors returned by Start and Stop.
var (
	// ErrClosed: the service is shutting down.
	ErrClosed = errors.New("chat: service is shutting down")
	// ErrBusy: too many generations are running (on the node or for the
	// client).
	ErrBusy = errors.New("chat: too many generations running")
	// ErrNotFound: no such stream.
	ErrNotFound = errors.New("chat: no such stream")
	// ErrFinished: the generation has ended already.
	ErrFinished = errors.New("chat: the generation has already finished")
	// ErrNotHere: the stream exists but its generation does not run on
	// this node (another node, or a previous run of this one).
	ErrNotHere = errors.New("chat: the generation is not running on this node")
)

// Causes of a generation's cancellation.
var (
	errStopped  = errors.New("stopped by a cancel request")
	errShutdown = errors.New("generation interrupted: the server is shutting down")
	// errCrashed is the message of the error event that ends a generation
	// found running after a crash.
	errCrashed = errors.New("generation interrupted: the server stopped before the answer was complete")
)

type tooLongError struct{ d time.Duration }

func (e *tooLongError) Error() string {
	return fmt.Sprintf("generation stopped: it ran longer than %s (--chat-max-duration)", e.d)
}

// Service runs generations and serves their streams. Create it with New and
// Close it; all methods are safe for concurrent use.
type Service struct {
	hub      *hub.Hub
	provider llm.Provider
	limits   Limits
	histMax  int
	keep     time.Duration
	stream   *sse.Server
	log      *slog.Logger
	metrics  *metrics
	access   access.Decider
	journal  *journal.Journal

	mu        sync.Mutex // guards the fields below
	gens      map[string]*generation
	perClient map[string]int
	running   int
	closed    bool
	lastFinal pubsub.Position // newest final event published

	wg        sync.WaitGroup // running generations
	closeOnce sync.Once
}

// generation states.
const (
	running = iota
	finishing
	finished
)

type generation struct {
	id, topic    string
	client       string
	owner        string // who started it: only they may stop it (access.Query.Owner)
	model        string
	conversation string
	start        pubsub.Position // just before the topic's first event
	cancel       context.CancelCauseFunc
	done         chan struct{} // closed once the final event is published (or failed)

	mu      sync.Mutex // guards the fields below
	state   int
	stopped bool
	forget  *time.Timer
}

// New returns a Service.
func New(o Options) (*Service, error) {
	if o.Hub == nil || o.Provider == nil {
		return nil, errors.New("chat: Hub and Provider are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Limits.MaxTokens <= 0 {
		o.Limits.MaxTokens = 960
	}
	if o.Limits.MaxDuration <= 0 {
		o.Limits.MaxDuration = 10 * time.Minute
	}
	if o.Stream == nil {
		o.Stream = &sse.Server{Logger: o.Logger}
	}
	s := &Service{
		hub: o.Hub, provider: o.Provider, limits: o.Limits, histMax: o.HistoryMaxEvents,
		keep: o.Retention, stream: o.Stream, log: o.Logger,
		gens: make(map[string]*generation), perClient: make(map[string]int), access: o.Access,
		journal: o.Journal,
	}
	o.Journal.Handle(JournalKind, s.endInterrupted)
	s.metrics = newMetrics(s)
	if o.Registerer != nil {
		if err := s.metrics.register(o.Registerer); err != nil {
			return nil, fmt.Errorf("chat: register metrics: %w", err)
		}
	}
	return s, nil
}

// Provider returns the service's model provider.
func (s *Service) Provider() llm.Provider { return s.provider }

// Started describes a generation that Start started.
type Started struct {
	ID           string `json:"id"`
	Stream       string `json:"stream"`
	Cancel       string `json:"cancel"`
	Model        string `json:"model"`
	Conversation string `json:"conversation,omitempty"`
}

// Start starts a generation for req on behalf of client (its address, for
// the per-client limit). The generation runs until it ends by itself, is
// stopped, or the service closes; ctx only carries values (it may be a
// request's context: its cancellation does not stop the generation).
func (s *Service) Start(ctx context.Context, client, conversation string, req llm.Request) (*Started, error) {
	return s.start(ctx, newID(), client, "", conversation, req)
}

func (s *Service) start(ctx context.Context, id, client, owner, conversation string, req llm.Request) (*Started, error) {
	if req.Model == "" {
		req.Model = s.provider.Model()
	}
	if req.MaxTokens <= 0 || req.MaxTokens > s.limits.MaxTokens {
		req.MaxTokens = s.limits.MaxTokens
	}
	g := &generation{id: id, client: client, owner: owner, model: req.Model, conversation: conversation, done: make(chan struct{})}
	g.topic = TopicPrefix + g.id
	// Every event of the topic comes after the log's head now.
	snap, err := s.hub.Broker().Read(ctx, pubsub.Query{Topics: []string{g.topic}})
	if err != nil {
		return nil, fmt.Errorf("chat: history unavailable: %w", err)
	}
	g.start = snap.Head
	gctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	gctx, cancelTimeout := context.WithTimeoutCause(gctx, s.limits.MaxDuration, &tooLongError{s.limits.MaxDuration})
	g.cancel = func(cause error) { cancel(cause); cancelTimeout() }

	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		g.cancel(nil)
		return nil, ErrClosed
	case s.limits.MaxConcurrent > 0 && s.running >= s.limits.MaxConcurrent:
		n := s.running
		s.mu.Unlock()
		g.cancel(nil)
		return nil, fmt.Errorf("%w: %d generations are running on this server (limit %d); try again shortly", ErrBusy, n, s.limits.MaxConcurrent)
	case s.limits.MaxConcurrentPerClient > 0 && s.perClient[client] >= s.limits.MaxConcurrentPerClient:
		n := s.perClient[client]
		s.mu.Unlock()
		g.cancel(nil)
		return nil, fmt.Errorf("%w: you have %d generations running (limit %d); wait for one to finish or stop it", ErrBusy, n, s.limits.MaxConcurrentPerClient)
	}
	s.running++
	s.perClient[client]++
	s.gens[g.id] = g
	s.wg.Add(1)
	s.mu.Unlock()
	// Recorded before anything is published: a crash from now on leaves
	// the generation in the journal, and the next start ends its stream.
	data, _ := json.Marshal(journalData{Model: req.Model, Conversation: conversation})
	if err := s.journal.Add(ctx, journal.Item{Kind: JournalKind, ID: g.id, Data: data}); err != nil {
		s.mu.Lock()
		delete(s.gens, g.id)
		s.mu.Unlock()
		s.release(g)
		s.wg.Done()
		g.cancel(nil)
		return nil, fmt.Errorf("chat: cannot record the generation: %w", err)
	}
	s.metrics.started.Inc()
	s.log.Info("chat generation started", "id", g.id, "provider", s.provider.Name(), "model", req.Model, "messages", len(req.Messages), "client", client)
	go s.run(gctx, g, req)
	return &Started{ID: g.id, Stream: "/chat/stream/" + g.id, Cancel: "/chat/stream/" + g.id + "/cancel", Model: req.Model, Conversation: conversation}, nil
}

// release frees g's concurrency slots.
func (s *Service) release(g *generation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running--
	if s.perClient[g.client]--; s.perClient[g.client] <= 0 {
		delete(s.perClient, g.client)
	}
}

// run streams the answer and publishes it. It always ends the topic with a
// done or an error event, unless the history itself fails.
func (s *Service) run(ctx context.Context, g *generation, req llm.Request) {
	defer s.wg.Done()
	defer close(g.done)
	defer g.cancel(nil)
	defer s.release(g)

	var (
		text      strings.Builder
		lines     lineEnds
		batch     = newBatcher(s.histMax, req.MaxTokens)
		tokens    int
		finish    string
		usage     *llm.Usage
		streamErr error
		pubErr    error
	)
	flush := func() {
		if data, ok := batch.take(); ok && pubErr == nil {
			if _, pubErr = s.publish(ctx, g, EventToken, data, false); pubErr == nil {
				s.metrics.tokenEvents.Inc()
			}
		}
	}
	for c, err := range s.provider.Stream(ctx, req) {
		if err != nil {
			streamErr = err
			break
		}
		if c.Usage != nil {
			usage = c.Usage
		}
		if c.FinishReason != "" {
			finish = c.FinishReason
		}
		if c.Text == "" {
			continue
		}
		if tokens >= req.MaxTokens {
			// The upstream does not respect max_tokens: cut it off.
			finish = "length"
			break
		}
		tokens++
		piece := lines.normalize(c.Text)
		text.WriteString(piece)
		if batch.add(piece) {
			flush()
		}
		if pubErr != nil {
			break
		}
	}
	flush()
	s.metrics.tokens.Add(float64(tokens))

	g.mu.Lock()
	g.state = finishing
	stopped := g.stopped
	g.mu.Unlock()

	var (
		typ  = EventDone
		data any
	)
	cause := context.Cause(ctx)
	var tooLong *tooLongError
	switch {
	case pubErr != nil:
		typ = EventError
		data = Error{Message: "the answer could not be stored: " + pubErr.Error()}
	case stopped:
		data = Done{FinishReason: "stopped", Stopped: true}
	case streamErr != nil && errors.Is(cause, errShutdown):
		typ, data = EventError, Error{Message: errShutdown.Error(), Code: CodeInterrupted}
	case streamErr != nil && errors.As(cause, &tooLong):
		typ, data = EventError, Error{Message: tooLong.Error()}
	case streamErr != nil:
		typ, data = EventError, Error{Message: streamErr.Error()}
	default:
		if finish == "" {
			finish = "stop"
		}
		data = Done{FinishReason: finish, Usage: usage}
	}
	switch d := data.(type) {
	case Done:
		d.Text, d.Tokens, d.Model, d.Conversation = text.String(), tokens, g.model, g.conversation
		data = d
	case Error:
		d.Text, d.Tokens, d.Model, d.Conversation = text.String(), tokens, g.model, g.conversation
		data = d
	}
	outcome := typ
	if stopped {
		outcome = "stopped"
	}
	s.metrics.finished.WithLabelValues(outcome).Inc()
	logArgs := []any{"id", g.id, "outcome", outcome, "tokens", tokens, "events", batch.events + 1}
	if typ == EventError {
		s.stream.Metrics.Failed(outage.Generation, fmt.Errorf("generation %s (%d tokens): %s", g.id, tokens, data.(Error).Message))
	} else {
		s.log.Info("chat generation finished", logArgs...)
	}

	b, _ := json.Marshal(data)
	if errors.Is(pubErr, pubsub.ErrTopicFinished) {
		// Someone else ended the topic (e.g. through /publish): there is no
		// way to add the final event.
		s.log.Warn("chat topic was ended by another publisher", "id", g.id, "topic", g.topic)
	} else if pos, err := s.publish(ctx, g, typ, string(b), true); err != nil {
		// Watchers wait until the history forgets the stream, or a restart
		// of the node ends it (it stays in the journal).
		s.stream.Metrics.Failed(outage.Publish, fmt.Errorf("final event of chat generation %s: %w", g.id, err))
	} else {
		s.journal.Done(JournalKind, g.id)
		s.mu.Lock()
		if pos.Offset > s.lastFinal.Offset || pos.Epoch != s.lastFinal.Epoch {
			s.lastFinal = pos
		}
		s.mu.Unlock()
	}
	g.mu.Lock()
	g.state = finished
	if s.keep > 0 {
		g.forget = time.AfterFunc(s.keep, func() { s.forget(g) })
	}
	g.mu.Unlock()
}

// publish publishes one event of g's topic. It does not give up when g's
// context ends: a stopped generation still publishes what it has.
func (s *Service) publish(ctx context.Context, g *generation, typ, data string, final bool) (pubsub.Position, error) {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	m := &pubsub.Message{Topics: []string{g.topic}, Type: typ, Data: data, Retain: final, Final: final}
	pos, err := s.hub.Publish(pctx, m)
	if err != nil && !final {
		g.cancel(err) // stop the upstream: its tokens cannot be stored
	}
	return pos, err
}

// forget drops a finished generation after the retention period, and its
// history when the broker can purge.
func (s *Service) forget(g *generation) {
	s.mu.Lock()
	if s.gens[g.id] == g {
		delete(s.gens, g.id)
	}
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	if p, ok := s.hub.Broker().(pubsub.Purger); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Purge(ctx, g.topic); err != nil {
			s.log.Warn("chat: cannot purge a forgotten stream", "id", g.id, "err", err)
		}
	}
}

// lookup returns the generation with id, if this node knows it.
func (s *Service) lookup(id string) *generation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gens[id]
}

// Stop cancels the generation id: the upstream request is cancelled, the
// partial answer is kept and the stream ends with a done event with
// "stopped": true. Stop waits until that event is published or ctx ends.
func (s *Service) Stop(ctx context.Context, id string) error {
	g := s.lookup(id)
	if g == nil {
		known, fin, err := s.exists(ctx, id)
		switch {
		case err != nil:
			return err
		case !known:
			return ErrNotFound
		case fin:
			return ErrFinished
		}
		return ErrNotHere
	}
	g.mu.Lock()
	if g.state != running {
		g.mu.Unlock()
		return ErrFinished
	}
	g.stopped = true
	g.mu.Unlock()
	g.cancel(errStopped)
	select {
	case <-g.done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// exists asks the history whether the stream id exists and is finished.
func (s *Service) exists(ctx context.Context, id string) (known, finished bool, err error) {
	_, known, finished, err = s.firstPosition(ctx, id)
	return known, finished, err
}

// firstPosition finds, in the history, the position just before the first
// event of stream id.
func (s *Service) firstPosition(ctx context.Context, id string) (start pubsub.Position, known, finished bool, err error) {
	topic := TopicPrefix + id
	b := pubsub.LogOf(s.hub.Broker(), topic)
	snap, err := b.Read(ctx, pubsub.Query{Topics: []string{topic}, After: &pubsub.Position{Epoch: b.Epoch()}})
	if err != nil {
		return pubsub.Position{}, false, false, fmt.Errorf("chat: history unavailable: %w", err)
	}
	_, finished = snap.Finals[topic]
	start = pubsub.Position{Epoch: snap.Head.Epoch}
	if len(snap.Events) > 0 {
		start.Offset = snap.Events[0].Pos.Offset - 1
	}
	return start, len(snap.Events) > 0 || finished, finished, nil
}

// Running returns the number of generations running now.
func (s *Service) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// Close stops accepting generations, interrupts the running ones (each ends
// its stream with an error event, code CodeInterrupted, that keeps its
// partial answer) and waits until they have, and the hub has fanned those
// events out to the streams, or until ctx ends. It may be called more than
// once.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	gens := make([]*generation, 0, len(s.gens))
	for _, g := range s.gens {
		gens = append(gens, g)
	}
	s.mu.Unlock()
	for _, g := range gens {
		g.mu.Lock()
		if g.forget != nil {
			g.forget.Stop()
		}
		g.mu.Unlock()
		g.cancel(errShutdown)
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
		s.mu.Lock()
		last := s.lastFinal
		s.mu.Unlock()
		if !last.IsZero() {
			// The streams end with the final events, not before them.
			err = s.hub.Sync(ctx, last)
		}
	case <-ctx.Done():
		// They were cancelled and end on their own shortly.
		err = fmt.Errorf("chat: generations still running at shutdown: %w", ctx.Err())
	}
	// Timers set after the first sweep (by generations that just ended).
	s.mu.Lock()
	for _, g := range s.gens {
		g.mu.Lock()
		if g.forget != nil {
			g.forget.Stop()
		}
		g.mu.Unlock()
	}
	s.mu.Unlock()
	s.closeOnce.Do(func() {
		if c, ok := s.provider.(interface{ Close() error }); ok {
			c.Close()
		}
	})
	return err
}

// newID returns a new stream id: 26 characters of base32 (128 random bits).
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// validID reports whether id could have been made by newID.
func validID(id string) bool {
	if len(id) != 26 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

func (s *Service) allowedModel(m string) bool {
	return m == "" || m == s.provider.Model() || slices.Contains(s.limits.AllowedModels, m)
}
