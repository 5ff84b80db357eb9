// Package codec encodes a pubsub.Message's content (topics, type, data,
// flags and metadata) as bytes, for brokers that store messages in an
// external engine. Position and time are not encoded: the engine assigns
// them.
//
// The format is binary-safe (data and topics may hold any bytes) and
// versioned by its first byte. Version 2 (written since metadata became
// fields):
//
//	version (2) | flags (1) | uvarint len(type) | type |
//	uvarint number of topics | for each: uvarint len | topic |
//	uvarint len(id) | id |
//	uvarint number of other-shard topics | for each: uvarint len | topic |
//	uvarint number of meta entries | for each: key, value as len | bytes |
//	data...
//
// Version 1 (written by releases before it) stops after the topics and has
// no id, other-shard topics or metadata: its data may start with a legacy
// metadata line, which Decode moves to Meta (see LegacyMeta).
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/heraldpush/herald/pubsub"
)

// Versions of the format.
const (
	version1 = 1
	version  = 2
)

const (
	flagRetain = 1 << iota
	flagFinal
	flagPrivate
)

// ErrCorrupt is returned (wrapped) by Decode for bytes Encode did not make.
var ErrCorrupt = errors.New("codec: corrupt message")

// Flags returns the flag byte of m (shared with the bolt record format).
func Flags(m *pubsub.Message) byte {
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
	return flags
}

// SetFlags sets m's flags from a flag byte made by Flags.
func SetFlags(m *pubsub.Message, flags byte) {
	m.Retain, m.Final, m.Private = flags&flagRetain != 0, flags&flagFinal != 0, flags&flagPrivate != 0
}

// Encode appends m's content to dst and returns the result.
func Encode(dst []byte, m *pubsub.Message) []byte {
	dst = append(dst, version, Flags(m))
	dst = appendString(dst, m.Type)
	dst = AppendStrings(dst, m.Topics)
	dst = AppendExtra(dst, m)
	return append(dst, m.Data...)
}

// AppendExtra appends the fields version 2 added (id, other-shard topics,
// metadata, keys sorted) to dst.
func AppendExtra(dst []byte, m *pubsub.Message) []byte {
	dst = appendString(dst, m.ID)
	dst = AppendStrings(dst, m.Also)
	dst = binary.AppendUvarint(dst, uint64(len(m.Meta)))
	keys := make([]string, 0, len(m.Meta))
	for k := range m.Meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		dst = appendString(dst, k)
		dst = appendString(dst, m.Meta[k])
	}
	return dst
}

// AppendStrings appends a count and each string, length-prefixed.
func AppendStrings(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = appendString(dst, s)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// Reader takes the fields of an encoded message from the front of B.
type Reader struct{ B []byte }

// String takes one length-prefixed string.
func (r *Reader) String() (string, bool) {
	n, k := binary.Uvarint(r.B)
	if k <= 0 || n > uint64(len(r.B)-k) {
		return "", false
	}
	s := string(r.B[k : k+int(n)])
	r.B = r.B[k+int(n):]
	return s, true
}

// Strings takes a count and as many strings; nil for none.
func (r *Reader) Strings() ([]string, bool) {
	n, k := binary.Uvarint(r.B)
	if k <= 0 || n > uint64(len(r.B)) {
		return nil, false
	}
	r.B = r.B[k:]
	if n == 0 {
		return nil, true
	}
	out := make([]string, n)
	for i := range out {
		var ok bool
		if out[i], ok = r.String(); !ok {
			return nil, false
		}
	}
	return out, true
}

// Extra takes the fields AppendExtra wrote into m.
func (r *Reader) Extra(m *pubsub.Message) error {
	var ok bool
	if m.ID, ok = r.String(); !ok {
		return fmt.Errorf("%w: bad id", ErrCorrupt)
	}
	if m.Also, ok = r.Strings(); !ok {
		return fmt.Errorf("%w: bad other-shard topics", ErrCorrupt)
	}
	n, k := binary.Uvarint(r.B)
	if k <= 0 || n > uint64(len(r.B)) {
		return fmt.Errorf("%w: bad meta count", ErrCorrupt)
	}
	r.B = r.B[k:]
	if n > 0 {
		m.Meta = make(map[string]string, n)
	}
	for range n {
		key, ok1 := r.String()
		val, ok2 := r.String()
		if !ok1 || !ok2 {
			return fmt.Errorf("%w: bad meta entry", ErrCorrupt)
		}
		m.Meta[key] = val
	}
	return nil
}

// Decode returns the message encoded in b (version 1 or 2), without
// position or time.
func Decode(b []byte) (*pubsub.Message, error) {
	if len(b) < 2 || b[0] != version && b[0] != version1 {
		return nil, fmt.Errorf("%w: bad header", ErrCorrupt)
	}
	m := &pubsub.Message{}
	SetFlags(m, b[1])
	r := Reader{B: b[2:]}
	var ok bool
	if m.Type, ok = r.String(); !ok {
		return nil, fmt.Errorf("%w: bad type", ErrCorrupt)
	}
	n, k := binary.Uvarint(r.B)
	if k <= 0 || n > uint64(len(r.B)) {
		return nil, fmt.Errorf("%w: bad topic count", ErrCorrupt)
	}
	r.B = r.B[k:]
	m.Topics = make([]string, n)
	for i := range m.Topics {
		if m.Topics[i], ok = r.String(); !ok {
			return nil, fmt.Errorf("%w: bad topic %d", ErrCorrupt, i)
		}
	}
	if b[0] == version {
		if err := r.Extra(m); err != nil {
			return nil, err
		}
		m.Data = string(r.B)
		return m, nil
	}
	m.Meta, m.Data = LegacyMeta(string(r.B))
	return m, nil
}

// legacyPrefix started the data of a message that carried metadata in
// releases before format 2: "\xff<protocol>:<query>\n<payload>" (0xFF
// never occurs in UTF-8 text).
const legacyPrefix = "\xff"

// LegacyMeta splits data stored by a release before format 2 into its
// metadata and payload: a first line "\xff<protocol>:<query>" becomes Meta
// entries "<protocol>.<key>" (the query's values); other data is returned
// as it is, with nil Meta.
func LegacyMeta(data string) (map[string]string, string) {
	if !strings.HasPrefix(data, legacyPrefix) {
		return nil, data
	}
	head, payload, ok := strings.Cut(data[len(legacyPrefix):], "\n")
	if !ok {
		return nil, data
	}
	proto, query, ok := strings.Cut(head, ":")
	if !ok || proto == "" {
		return nil, data
	}
	v, err := url.ParseQuery(query)
	if err != nil {
		return nil, data
	}
	meta := make(map[string]string, len(v))
	for k, vals := range v {
		if len(vals) > 0 {
			meta[proto+"."+k] = vals[0]
		}
	}
	if len(meta) == 0 {
		meta = nil
	}
	return meta, payload
}
