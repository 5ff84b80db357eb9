// Package codec encodes a pubsub.Message's content (topics, type, data and
// flags) as bytes, for brokers that store messages in an external engine.
// Position and time are not encoded: the engine assigns them.
//
// The format is binary-safe (data and topics may hold any bytes) and
// versioned by its first byte:
//
//	version (1) | flags (1) | uvarint len(type) | type |
//	uvarint number of topics | for each: uvarint len | topic | data...
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/heraldpush/herald/pubsub"
)

const version = 1

const (
	flagRetain = 1 << iota
	flagFinal
	flagPrivate
)

// ErrCorrupt is returned (wrapped) by Decode for bytes Encode did not make.
var ErrCorrupt = errors.New("codec: corrupt message")

// Encode appends m's content to dst and returns the result.
func Encode(dst []byte, m *pubsub.Message) []byte {
	var flags byte
	if m.Retain {
		flags |= flagRetain
	}
	if m.Final {
		flags |= flagFinal
	}
	if m.Private {
		flags |= flagPrivate
	}
	dst = append(dst, version, flags)
	dst = binary.AppendUvarint(dst, uint64(len(m.Type)))
	dst = append(dst, m.Type...)
	dst = binary.AppendUvarint(dst, uint64(len(m.Topics)))
	for _, t := range m.Topics {
		dst = binary.AppendUvarint(dst, uint64(len(t)))
		dst = append(dst, t...)
	}
	return append(dst, m.Data...)
}

// Decode returns the message encoded in b, without position or time.
func Decode(b []byte) (*pubsub.Message, error) {
	if len(b) < 2 || b[0] != version {
		return nil, fmt.Errorf("%w: bad header", ErrCorrupt)
	}
	flags := b[1]
	b = b[2:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	m := &pubsub.Message{Retain: flags&flagRetain != 0, Final: flags&flagFinal != 0, Private: flags&flagPrivate != 0}
	var ok bool
	if m.Type, ok = str(); !ok {
		return nil, fmt.Errorf("%w: bad type", ErrCorrupt)
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, fmt.Errorf("%w: bad topic count", ErrCorrupt)
	}
	b = b[k:]
	m.Topics = make([]string, n)
	for i := range m.Topics {
		if m.Topics[i], ok = str(); !ok {
			return nil, fmt.Errorf("%w: bad topic %d", ErrCorrupt, i)
		}
	}
	m.Data = string(b)
	return m, nil
}
