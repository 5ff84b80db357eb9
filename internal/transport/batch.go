package transport

import "github.com/heraldpush/herald/internal/hub"

// Batch is what one turn writes: the shared bytes of events and the
// protocol's framing, written with one writev(2) on the lean path. A
// protocol appends to it in Turn; the engine writes it and resets it.
type Batch struct {
	parts   [][]byte
	payload int    // body bytes, without the transport's framing (the request log's count)
	events  int    // events among the parts
	scratch []byte // the batch's own bytes (framing), handed out by Alloc

	evs []*hub.Event // Pump's scratch
}

// Add appends p, which must not change until the batch is written (shared
// event bytes, constants, or bytes from Alloc); payload is how many of its
// bytes are body bytes for the request log.
func (b *Batch) Add(p []byte, payload int) {
	if len(p) == 0 {
		return
	}
	b.parts = append(b.parts, p)
	b.payload += payload
}

// Event appends an event's encoded bytes, counted as one event written.
func (b *Batch) Event(p []byte, payload int) {
	b.Add(p, payload)
	b.events++
}

// Alloc returns n bytes of the batch's own, valid until the batch is
// written, for framing (a chunk header, a frame header, an answer).
func (b *Batch) Alloc(n int) []byte {
	if cap(b.scratch)-len(b.scratch) < n {
		// A new array: the parts handed out keep the old one.
		b.scratch = make([]byte, 0, max(2*cap(b.scratch), n, 256))
	}
	l := len(b.scratch)
	b.scratch = b.scratch[:l+n]
	return b.scratch[l : l+n : l+n]
}

// Mark returns the position of the next part, for Insert.
func (b *Batch) Mark() int { return len(b.parts) }

// Insert puts p at position i (from Mark), before the parts added since:
// framing whose bytes depend on what follows (a chunk's size).
func (b *Batch) Insert(i int, p []byte, payload int) {
	b.parts = append(b.parts, nil)
	copy(b.parts[i+1:], b.parts[i:])
	b.parts[i] = p
	b.payload += payload
}

// Len returns the number of bytes in the batch.
func (b *Batch) Len() int {
	n := 0
	for _, p := range b.parts {
		n += len(p)
	}
	return n
}

// Empty reports whether nothing is to be written.
func (b *Batch) Empty() bool { return len(b.parts) == 0 }

// Parts returns what is to be written, in order.
func (b *Batch) Parts() [][]byte { return b.parts }

// reset empties the batch for the next turn, keeping its arrays. keep
// says the parts were handed on (to a goroutine finishing the write): the
// scratch array is then left to them.
func (b *Batch) reset(handedOn bool) {
	clear(b.parts) // no references kept to the events' bytes
	b.parts, b.payload, b.events = b.parts[:0], 0, 0
	if handedOn {
		b.scratch = nil
	} else {
		b.scratch = b.scratch[:0]
	}
}
