package send

import (
	"container/list"

	"context"
	"github.com/heraldpush/herald/internal/access"
	"sync"
	"time"
)

// Dedupe remembers the messages a client sent, by sender, client id and
// message id,
// so that a message retried (for example after a switch from WebSocket to
// SSE) is delivered once. It is bounded in time (Window) and in size (Size):
// a retry that comes later than the window, or after more than Size newer
// messages, is taken for a new message. The zero value is not usable; create
// one with NewDedupe. All methods are safe for concurrent use.
type Dedupe struct {
	window time.Duration
	size   int

	mu      sync.Mutex // guards entries and order
	entries map[string]*list.Element
	order   *list.List // of *entry, oldest first
}

// entry is the delivery state of one message. Its lock (a channel, so that
// waiting can be cancelled) serialises the attempts to deliver it: a retry
// that arrives while the first attempt is still running waits for it, then
// finds it done.
type entry struct {
	key     string
	created time.Time
	lock    chan struct{}

	// Guarded by lock.
	fingerprint string
	published   string // event id, once published
	forwarded   bool   // sent to the webhook
	done        bool
	err         *access.Error // a permanent failure, answered again to retries
}

// NewDedupe returns a Dedupe that remembers message ids for window, and at
// most size of them. Defaults: 10 minutes, 100,000.
func NewDedupe(window time.Duration, size int) *Dedupe {
	if window <= 0 {
		window = 10 * time.Minute
	}
	if size <= 0 {
		size = 100000
	}
	return &Dedupe{window: window, size: size, entries: make(map[string]*list.Element), order: list.New()}
}

// Len returns the number of remembered message ids.
func (d *Dedupe) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.evict(time.Now())
	return d.order.Len()
}

// acquire returns the entry of key, created if needed, with its lock held.
// The caller must release it.
func (d *Dedupe) acquire(ctx context.Context, key string) (*entry, error) {
	now := time.Now()
	d.mu.Lock()
	d.evict(now)
	var e *entry
	if el, ok := d.entries[key]; ok {
		e = el.Value.(*entry)
	} else {
		e = &entry{key: key, created: now, lock: make(chan struct{}, 1)}
		d.entries[key] = d.order.PushBack(e)
		for d.order.Len() > d.size {
			d.remove(d.order.Front())
		}
	}
	d.mu.Unlock()
	select {
	case e.lock <- struct{}{}:
		return e, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (e *entry) release() { <-e.lock }

// evict forgets the entries older than the window. d.mu is held.
func (d *Dedupe) evict(now time.Time) {
	for el := d.order.Front(); el != nil; el = d.order.Front() {
		if now.Sub(el.Value.(*entry).created) < d.window {
			return
		}
		d.remove(el)
	}
}

func (d *Dedupe) remove(el *list.Element) {
	delete(d.entries, el.Value.(*entry).key)
	d.order.Remove(el)
}
