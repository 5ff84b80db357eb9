package codec

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"github.com/heraldpush/herald/pubsub"
)

// SkipExtra checks the fields AppendExtra wrote at the front of b and
// returns what follows them, without allocating.
func SkipExtra(b []byte) ([]byte, error) {
	r := Reader{B: b}
	if !r.skip(1) {
		return nil, fmt.Errorf("%w: bad id", ErrCorrupt)
	}
	if !r.skipList(1) {
		return nil, fmt.Errorf("%w: bad other-shard topics", ErrCorrupt)
	}
	if !r.skipList(2) {
		return nil, fmt.Errorf("%w: bad meta", ErrCorrupt)
	}
	return r.B, nil
}

// skip takes n length-prefixed strings.
func (r *Reader) skip(n uint64) bool {
	for range n {
		l, k := binary.Uvarint(r.B)
		if k <= 0 || l > uint64(len(r.B)-k) {
			return false
		}
		r.B = r.B[k+int(l):]
	}
	return true
}

// skipList takes a count and as many groups of per strings.
func (r *Reader) skipList(per uint64) bool {
	n, k := binary.Uvarint(r.B)
	if k <= 0 || n > uint64(len(r.B)) {
		return false
	}
	r.B = r.B[k:]
	return r.skip(n * per)
}

// view takes one length-prefixed string that aliases r.B (no copy).
func (r *Reader) view() (string, bool) {
	n, k := binary.Uvarint(r.B)
	if k <= 0 || n > uint64(len(r.B)-k) {
		return "", false
	}
	s := unsafe.String(unsafe.SliceData(r.B[k:]), int(n))
	r.B = r.B[k+int(n):]
	return s, true
}

// ExtraView takes the fields AppendExtra wrote into m as Extra does, but
// without copying: m.ID, the strings of m.Also and of m.Meta alias r.B,
// m.Also reuses also's array and m.Meta is meta (made when nil), cleared
// and filled (m.Meta is nil when the message has no metadata). It is for readers that hand a message
// to a callback for the time of the call only: the strings are valid only
// as long as r.B's memory is.
func (r *Reader) ExtraView(m *pubsub.Message, also []string, meta map[string]string) error {
	var ok bool
	if m.ID, ok = r.view(); !ok {
		return fmt.Errorf("%w: bad id", ErrCorrupt)
	}
	n, k := binary.Uvarint(r.B)
	if k <= 0 || n > uint64(len(r.B)) {
		return fmt.Errorf("%w: bad other-shard topics", ErrCorrupt)
	}
	r.B = r.B[k:]
	m.Also = nil
	if n > 0 {
		m.Also = also[:0]
		for range n {
			s, ok := r.view()
			if !ok {
				return fmt.Errorf("%w: bad other-shard topics", ErrCorrupt)
			}
			m.Also = append(m.Also, s)
		}
	}
	if n, k = binary.Uvarint(r.B); k <= 0 || n > uint64(len(r.B)) {
		return fmt.Errorf("%w: bad meta count", ErrCorrupt)
	}
	r.B = r.B[k:]
	m.Meta = nil
	if n == 0 {
		return nil
	}
	if meta == nil {
		meta = make(map[string]string, n)
	}
	clear(meta)
	for range n {
		key, ok1 := r.view()
		val, ok2 := r.view()
		if !ok1 || !ok2 {
			return fmt.Errorf("%w: bad meta entry", ErrCorrupt)
		}
		meta[key] = val
	}
	m.Meta = meta
	return nil
}
