// Package limit bounds what clients may use: concurrent requests per key
// (client address, token subject), request rates per key, and open
// connections per listener.
package limit

import (
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

const shards = 32

// Concurrency counts concurrent holders per key and refuses more than Max.
// The zero value is not usable; create one with NewConcurrency. It is safe
// for concurrent use.
type Concurrency struct {
	max    int
	seed   maphash.Seed
	shards [shards]struct {
		mu sync.Mutex
		n  map[string]int
	}
}

// NewConcurrency returns a counter allowing max holders per key (max <= 0:
// no limit).
func NewConcurrency(max int) *Concurrency {
	c := &Concurrency{max: max, seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].n = make(map[string]int)
	}
	return c
}

// Acquire takes a slot for key. It returns false when key holds Max slots
// already; otherwise the caller must call release exactly once (extra calls
// do nothing).
func (c *Concurrency) Acquire(key string) (release func(), ok bool) {
	if c == nil || c.max <= 0 {
		return func() {}, true
	}
	sh := &c.shards[maphash.String(c.seed, key)%shards]
	sh.mu.Lock()
	if sh.n[key] >= c.max {
		sh.mu.Unlock()
		return nil, false
	}
	sh.n[key]++
	sh.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			sh.mu.Lock()
			if sh.n[key]--; sh.n[key] <= 0 {
				delete(sh.n, key)
			}
			sh.mu.Unlock()
		})
	}, true
}

// Count returns the slots key holds.
func (c *Concurrency) Count(key string) int {
	if c == nil || c.max <= 0 {
		return 0
	}
	sh := &c.shards[maphash.String(c.seed, key)%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.n[key]
}

// Rate is a token bucket per key. Buckets idle long enough to be full again
// are forgotten, so memory follows the number of active keys. It is safe
// for concurrent use.
type Rate struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
}

type bucket struct {
	l    *rate.Limiter
	last time.Time
}

// NewRate returns a limiter allowing perSecond events per key on average
// and burst at once (perSecond <= 0: no limit).
func NewRate(perSecond float64, burst int) *Rate {
	if burst < 1 {
		burst = 1
	}
	return &Rate{limit: rate.Limit(perSecond), burst: burst, now: time.Now, buckets: make(map[string]*bucket)}
}

// Allow takes one event for key. When the bucket is empty it returns false
// and how long until an event would be allowed.
func (r *Rate) Allow(key string) (ok bool, retryAfter time.Duration) {
	if r == nil || r.limit <= 0 {
		return true, 0
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maybeSweep(now)
	b := r.buckets[key]
	if b == nil {
		b = &bucket{l: rate.NewLimiter(r.limit, r.burst)}
		r.buckets[key] = b
	}
	b.last = now
	if b.l.AllowN(now, 1) {
		return true, 0
	}
	res := b.l.ReserveN(now, 1)
	d := res.DelayFrom(now)
	res.CancelAt(now)
	return false, d
}

// refill is how long an idle bucket takes to fill up again.
func (r *Rate) refill() time.Duration {
	s := float64(r.burst) / float64(r.limit)
	if s > 3600 || math.IsInf(s, 0) {
		return time.Hour
	}
	return time.Duration(s*float64(time.Second)) + time.Second
}

// maybeSweep forgets full buckets, at most once per refill period. r.mu is
// held.
func (r *Rate) maybeSweep(now time.Time) {
	idle := r.refill()
	if now.Sub(r.sweep) < idle {
		return
	}
	r.sweep = now
	for k, b := range r.buckets {
		if now.Sub(b.last) >= idle {
			delete(r.buckets, k)
		}
	}
}

// Len returns the number of buckets held.
func (r *Rate) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.buckets)
}
