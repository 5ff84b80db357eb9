package dssub

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/heraldpush/herald/pubsub"
)

// Streams is what the subscriptions need of the streams (a
// *streams.Service).
type Streams interface {
	// Tail returns the stream's tail offset, and whether it is there.
	Tail(ctx context.Context, topic string) (string, bool, error)
	// AppendJSON appends a JSON value to a JSON stream.
	AppendJSON(ctx context.Context, topic, value string) (string, error)
}

// Options configure a Manager. Zero fields take their defaults.
type Options struct {
	// Logger; default slog.Default().
	Logger *slog.Logger
	// KeyFile is a PEM PKCS #8 Ed25519 private key to sign webhooks with;
	// "": the cluster's key on the broker (made by the first node).
	KeyFile string
	// URLPolicy checks webhook URLs (the zero policy: public addresses
	// only).
	URLPolicy URLPolicy
	// Prefix is the URL path of the streams ("/v1/stream/").
	Prefix string
	// TopicPrefix is the streams' topic prefix ("ds/").
	TopicPrefix string
	// Timeout bounds one webhook request; default 10 s.
	Timeout time.Duration
	// MaxDeliveries bounds the webhook requests in flight on this node;
	// default 32.
	MaxDeliveries int
	// SweepInterval is how often leases are checked; default 250 ms.
	// Subscriptions with pending data and no wake are woken every eighth
	// sweep.
	SweepInterval time.Duration
	// MaxQueue bounds the streams written to and not yet matched; default
	// 10000. Beyond, a write is dropped and the next full sweep matches
	// every stream the broker lists (pubsub.Inspector), so no wake is lost.
	MaxQueue int
	// MaxLinks bounds the streams one subscription follows (every change
	// writes them all in one record); default 4096. Beyond, an explicit
	// link is refused (400) and a stream the pattern matches is not linked.
	MaxLinks int
	// RotateEvery is how many records a segment of a subscription's log
	// holds before the log moves to the next one (the old one is purged);
	// default 256.
	RotateEvery int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Client makes the webhook requests; default one that dials through
	// URLPolicy. Tests may set their own.
	Client *http.Client
}

// Manager serves the subscriptions of one streams broker. It is safe for
// concurrent use. Open it, Run it, and Close it.
type Manager struct {
	broker  pubsub.Broker
	cond    pubsub.Conditional
	purger  pubsub.Purger // nil: rotated segments are not purged
	streams Streams
	key     *signer
	o       Options
	log     *slog.Logger
	node    string
	client  *http.Client
	sem     chan struct{}

	bg     context.Context // deliveries run under it until Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// closeMu orders spawn's wg.Add before Close's wg.Wait; closed: no
	// delivery starts any more.
	closeMu sync.Mutex
	closed  bool

	mu   sync.Mutex
	logs map[string]*subLog

	idxMu sync.Mutex
	idx   index

	qmu   sync.Mutex
	queue map[string]bool
	// lost: a write was not matched (the queue was full, or matching
	// failed); the next full sweep matches every stream (rematch).
	lost bool
	kick chan struct{}
}

// Open returns a Manager over b (which must implement pubsub.Conditional)
// for the streams st, with the signing key loaded or made.
func Open(ctx context.Context, b pubsub.Broker, st Streams, o Options) (*Manager, error) {
	cond, ok := b.(pubsub.Conditional)
	if !ok {
		return nil, fmt.Errorf("dssub: broker %T lacks pubsub.Conditional", b)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Prefix == "" {
		o.Prefix = "/v1/stream/"
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = "ds/"
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.MaxDeliveries <= 0 {
		o.MaxDeliveries = 32
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = 250 * time.Millisecond
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = 10000
	}
	if o.MaxLinks <= 0 {
		o.MaxLinks = 4096
	}
	if o.RotateEvery <= 1 {
		o.RotateEvery = 256
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	key, err := loadKey(ctx, cond, o.KeyFile)
	if err != nil {
		return nil, err
	}
	client := o.Client
	if client == nil {
		pol := o.URLPolicy
		tr := &http.Transport{DialContext: pol.DialContext, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second,
			TLSHandshakeTimeout: o.Timeout, ResponseHeaderTimeout: o.Timeout}
		client = &http.Client{Transport: tr, Timeout: o.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	nb := make([]byte, 9)
	_, _ = rand.Read(nb)
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	purger, _ := b.(pubsub.Purger)
	return &Manager{broker: b, cond: cond, purger: purger, streams: st, key: key, o: o, log: o.Logger, node: base64.RawURLEncoding.EncodeToString(nb),
		client: client, sem: make(chan struct{}, o.MaxDeliveries), bg: bg, cancel: cancel,
		logs: make(map[string]*subLog), queue: make(map[string]bool), kick: make(chan struct{}, 1)}, nil
}

// Close stops the deliveries in flight and waits for them.
func (m *Manager) Close() {
	m.closeMu.Lock()
	m.closed = true
	m.closeMu.Unlock()
	m.cancel()
	m.wg.Wait()
	if t, ok := m.client.Transport.(*http.Transport); ok && m.o.Client == nil {
		t.CloseIdleConnections()
	}
}

// warn logs a failure, unless ctx ended (a shutdown's cancelled reads).
func (m *Manager) warn(ctx context.Context, msg string, args ...any) {
	if ctx.Err() == nil {
		m.log.Warn(msg, args...)
	}
}

// spawn runs f in a goroutine that Close waits for; once Close has
// begun (a request still served during shutdown), it runs nothing: the
// wake's lease runs out and another node's sweep delivers it.
func (m *Manager) spawn(f func(ctx context.Context)) {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f(m.bg)
	}()
}

// Notify tells the manager that the stream topic was written to (the
// streams' OnWrite hook): the write is matched against the subscriptions
// soon, by Run. It never blocks. A nil Manager ignores it.
func (m *Manager) Notify(topic string) {
	if m == nil || !strings.HasPrefix(topic, m.o.TopicPrefix) {
		return
	}
	p := strings.TrimPrefix(topic, m.o.TopicPrefix)
	m.qmu.Lock()
	if len(m.queue) < m.o.MaxQueue {
		m.queue[p] = true
	} else if !m.queue[p] {
		m.lost = true
	}
	m.qmu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run matches writes and sweeps leases until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.o.SweepInterval)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
			if ctx.Err() != nil {
				return
			}
			m.qmu.Lock()
			paths := make([]string, 0, len(m.queue))
			for p := range m.queue {
				paths = append(paths, p)
			}
			clear(m.queue)
			m.qmu.Unlock()
			m.match(ctx, paths)
		case <-t.C:
			if n%8 == 0 {
				m.rematch(ctx)
			}
			m.sweep(ctx, n%8 == 0)
		}
	}
}

// match wakes the subscriptions that follow, or should follow, the
// streams at paths.
func (m *Manager) match(ctx context.Context, paths []string) {
	ids, err := m.refreshIndex(ctx)
	if err != nil {
		m.warn(ctx, "dssub: match", "err", err)
		m.setLost()
		return
	}
	for _, id := range ids {
		s, err := m.load(ctx, id)
		if err != nil {
			m.warn(ctx, "dssub: match", "subscription", id, "err", err)
			m.setLost()
			continue
		}
		if s == nil {
			continue
		}
		for _, p := range paths {
			if s.matches(p) {
				m.touch(ctx, id, p)
			}
		}
	}
}

// setLost records that a write may not have been matched.
func (m *Manager) setLost() {
	m.qmu.Lock()
	m.lost = true
	m.qmu.Unlock()
}

// rematch matches every stream the broker holds when a write may not
// have been matched (lost): the sweep wakes what is pending on the
// streams a subscription follows already, and this links the new streams
// its pattern matches. It needs a broker that lists its topics
// (pubsub.Inspector).
func (m *Manager) rematch(ctx context.Context) {
	m.qmu.Lock()
	lost := m.lost
	m.lost = false
	m.qmu.Unlock()
	if !lost {
		return
	}
	in, ok := m.broker.(pubsub.Inspector)
	if !ok {
		m.warn(ctx, "dssub: a write to a stream was not matched (queue full or broker failure) and the broker cannot list its streams: a new stream a pattern matches is linked at its next write")
		return
	}
	topics, err := in.Topics(ctx)
	if err != nil {
		m.warn(ctx, "dssub: rematch", "err", err)
		m.setLost()
		return
	}
	paths := make([]string, 0, len(topics))
	for _, t := range topics {
		if p, ok := strings.CutPrefix(t.Topic, m.o.TopicPrefix); ok && p != "" {
			paths = append(paths, p)
		}
	}
	m.match(ctx, paths)
}

// touch links the stream at p to the subscription (by its pattern) if it
// is not, and wakes the subscription if it has no wake and data is
// pending.
func (m *Manager) touch(ctx context.Context, id, p string) {
	var trigger string
	s, wrote, err := m.update(ctx, id, func(cur *sub) (*sub, error) {
		trigger = ""
		if cur == nil || !cur.matches(p) {
			return nil, nil
		}
		changed := false
		if cur.linkOf(p) < 0 {
			if len(cur.Links) >= m.o.MaxLinks {
				if cur.Capped {
					return nil, nil
				}
				// Said once (the record keeps it), not at every write.
				m.log.Warn("dssub: a subscription follows as many streams as it may; streams its pattern matches are not linked any more",
					"subscription", id, "max_links", m.o.MaxLinks)
				cur.Capped = true
				return cur, nil
			}
			cur.addLink(p, false, startOffset)
			changed = true
		}
		if cur.WakeID == "" {
			t, err := m.wakeIfPending(ctx, cur)
			if err != nil {
				return nil, err
			}
			trigger = t
			changed = changed || t != ""
		}
		if !changed {
			return nil, nil
		}
		return cur, nil
	})
	if err != nil {
		m.warn(ctx, "dssub: wake", "subscription", id, "err", err)
		return
	}
	if wrote && trigger != "" {
		m.afterWake(s, trigger)
	}
}

// tails returns the tails of the streams s follows ("-1" for a missing
// one, whose acknowledged offset in s goes back to "-1" too), and the
// first stream with data past its acknowledged offset ("": none).
func (m *Manager) tails(ctx context.Context, s *sub) (map[string]string, string, error) {
	out := make(map[string]string, len(s.Links))
	pending := ""
	for i, l := range s.Links {
		t, ok, err := m.streams.Tail(ctx, m.o.TopicPrefix+l.Path)
		if err != nil {
			return nil, "", err
		}
		if !ok {
			// Missing, or deleted: whatever is made at its path later is
			// all pending (its offsets need not follow the old ones).
			t = startOffset
			s.Links[i].Acked = startOffset
			l.Acked = startOffset
		}
		out[l.Path] = t
		if pending == "" && offsetAfter(t, l.Acked) {
			pending = l.Path
		}
	}
	return out, pending, nil
}

// offsetAfter reports whether offset a comes after b. Offsets of a stream
// sort as text; "-1" comes first.
func offsetAfter(a, b string) bool {
	if a == startOffset {
		return false
	}
	return b == startOffset || a > b
}

// wakeIfPending makes a new wake of s when one of its streams has pending
// data, and returns that stream ("": none, s unchanged).
func (m *Manager) wakeIfPending(ctx context.Context, s *sub) (string, error) {
	tails, pending, err := m.tails(ctx, s)
	if err != nil || pending == "" {
		return "", err
	}
	s.clearWake()
	s.Gen++
	s.WakeID = newWakeID()
	s.Snapshot = tails
	if s.Type == typeWebhook {
		// The node that makes the wake delivers it, under its lease.
		s.Holder = "node:" + m.node
		s.LeaseUntil = m.o.Now().UnixMilli() + s.LeaseTTL
	}
	return pending, nil
}

// afterWake delivers the wake s just got: a webhook request, or an event
// on the pull-wake stream.
func (m *Manager) afterWake(s *sub, trigger string) {
	switch s.Type {
	case typeWebhook:
		id, gen, wid := s.ID, s.Gen, s.WakeID
		m.spawn(func(ctx context.Context) { m.deliver(ctx, id, gen, wid) })
	case typePullWake:
		ev := fmt.Sprintf(`{"type":"wake","subscription_id":%s,"stream":%s,"generation":%d,"ts":%d}`,
			quote(s.ID), quote(trigger), s.Gen, m.o.Now().UnixMilli())
		ctx, cancel := context.WithTimeout(m.bg, m.o.Timeout)
		defer cancel()
		if _, err := m.streams.AppendJSON(ctx, m.o.TopicPrefix+s.WakeStream, ev); err != nil {
			m.log.Warn("dssub: append to the wake stream", "subscription", s.ID, "wake_stream", s.WakeStream, "err", err)
		}
	}
}

// sweep ends expired leases (and wakes again what is pending); with full,
// it also wakes subscriptions with pending data and no wake (a write
// whose match was lost with its node, or dropped from a full queue).
func (m *Manager) sweep(ctx context.Context, full bool) {
	ids, err := m.refreshIndex(ctx)
	if err != nil {
		m.warn(ctx, "dssub: sweep", "err", err)
		return
	}
	for _, id := range ids {
		s, err := m.load(ctx, id)
		if err != nil {
			m.warn(ctx, "dssub: sweep", "subscription", id, "err", err)
			continue
		}
		if s == nil {
			continue
		}
		expired := s.LeaseUntil != 0 && m.o.Now().UnixMilli() > s.LeaseUntil
		if !expired && !(full && s.WakeID == "") {
			continue
		}
		var trigger string
		s, wrote, err := m.update(ctx, id, func(cur *sub) (*sub, error) {
			trigger = ""
			if cur == nil {
				return nil, nil
			}
			cleared := false
			if cur.LeaseUntil != 0 && m.o.Now().UnixMilli() > cur.LeaseUntil {
				cur.clearWake()
				cleared = true
			} else if cur.WakeID != "" {
				return nil, nil
			}
			t, err := m.wakeIfPending(ctx, cur)
			if err != nil {
				return nil, err
			}
			trigger = t
			if t == "" && !cleared {
				return nil, nil
			}
			return cur, nil
		})
		if err != nil {
			m.warn(ctx, "dssub: sweep", "subscription", id, "err", err)
			continue
		}
		if wrote && trigger != "" {
			m.afterWake(s, trigger)
		}
	}
}

// apiError is a refused subscription request: the protocol's error
// codes.
type apiError struct {
	status int
	code   string
	msg    string
	holder string // ALREADY_CLAIMED: the current holder
	gen    int64
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func refuse(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

var errNotFound = func() error { return refuse(http.StatusNotFound, "SUBSCRIPTION_NOT_FOUND", "subscription not found") }
