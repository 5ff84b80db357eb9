// Package fair orders topics for the byte bound that brokers share fairly
// (see pubsub.Retention.MaxBytes): a max-heap by the bytes the bound may
// evict from each (all but its newest message), so that the broker evicts
// from the one that holds the most.
package fair

import "container/heap"

// Entry is a topic's place in a Heap; embed it in the type the heap holds.
// The zero value is not in any heap.
type Entry struct {
	evictable int64
	index     int // in the heap, plus one; 0 when not in it
}

// Evictable returns the bytes the entry was last set to.
func (e *Entry) Evictable() int64 { return e.evictable }

// FairEntry returns e: it makes a type that embeds Entry a Heap element.
func (e *Entry) FairEntry() *Entry { return e }

// Heap is a max-heap of topics by evictable bytes. The zero value is an
// empty heap. It is not safe for concurrent use.
type Heap[T interface{ FairEntry() *Entry }] struct {
	h items[T]
}

// Set records that x may have evictable bytes evicted: it enters the heap,
// moves in it, or (with 0) leaves it.
func (h *Heap[T]) Set(x T, evictable int64) {
	e := x.FairEntry()
	e.evictable = evictable
	switch {
	case evictable > 0 && e.index == 0:
		heap.Push(&h.h, x)
	case evictable > 0:
		heap.Fix(&h.h, e.index-1)
	case e.index > 0:
		heap.Remove(&h.h, e.index-1)
	}
}

// Top returns the topic with the most evictable bytes, if any.
func (h *Heap[T]) Top() (T, bool) {
	if len(h.h) == 0 {
		var zero T
		return zero, false
	}
	return h.h[0], true
}

// Len returns the number of topics in the heap.
func (h *Heap[T]) Len() int { return len(h.h) }

// Reset empties the heap.
func (h *Heap[T]) Reset() {
	for _, x := range h.h {
		x.FairEntry().index = 0
	}
	clear(h.h)
	h.h = h.h[:0]
}

type items[T interface{ FairEntry() *Entry }] []T

func (s items[T]) Len() int { return len(s) }
func (s items[T]) Less(i, j int) bool {
	return s[i].FairEntry().evictable > s[j].FairEntry().evictable
}
func (s items[T]) Swap(i, j int) {
	s[i], s[j] = s[j], s[i]
	s[i].FairEntry().index, s[j].FairEntry().index = i+1, j+1
}
func (s *items[T]) Push(x any) {
	t := x.(T)
	*s = append(*s, t)
	t.FairEntry().index = len(*s)
}
func (s *items[T]) Pop() any {
	old := *s
	t := old[len(old)-1]
	var zero T
	old[len(old)-1] = zero
	*s = old[:len(old)-1]
	t.FairEntry().index = 0
	return t
}
