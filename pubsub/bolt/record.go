package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/heraldpush/herald/pubsub"
)

// A record is a message as stored on disk:
//
//	version byte (1)
//	flags   byte (1 retain, 2 final, 4 private)
//	offset  uvarint
//	time    varint (Unix nanoseconds)
//	topics  uvarint count, then each as uvarint length + bytes
//	type    uvarint length + bytes
//	data    uvarint length + bytes
//
// The epoch is not stored per record: a file holds one log of one epoch.
const recordVersion = 1

const (
	flagRetain = 1 << iota
	flagFinal
	flagPrivate
)

var errCorrupt = errors.New("bolt: corrupt record")

// appendRecord appends m's record to dst.
func appendRecord(dst []byte, m *pubsub.Message) []byte {
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
	dst = append(dst, recordVersion, flags)
	dst = binary.AppendUvarint(dst, m.Pos.Offset)
	dst = binary.AppendVarint(dst, m.Time.UnixNano())
	dst = binary.AppendUvarint(dst, uint64(len(m.Topics)))
	for _, t := range m.Topics {
		dst = appendBytes(dst, t)
	}
	dst = appendBytes(dst, m.Type)
	return appendBytes(dst, m.Data)
}

func appendBytes(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// rawRecord is a parsed record whose byte slices point into the stored
// value: valid only inside the transaction that read it.
type rawRecord struct {
	flags  byte
	offset uint64
	time   int64
	topics [][]byte
	typ    []byte
	data   []byte
}

// parseRecord parses b without copying.
func parseRecord(b []byte) (rawRecord, error) {
	var r rawRecord
	if len(b) < 2 || b[0] != recordVersion {
		return r, errCorrupt
	}
	r.flags = b[1]
	b = b[2:]
	var n int
	if r.offset, n = binary.Uvarint(b); n <= 0 {
		return r, errCorrupt
	}
	b = b[n:]
	if r.time, n = binary.Varint(b); n <= 0 {
		return r, errCorrupt
	}
	b = b[n:]
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return r, errCorrupt
	}
	b = b[n:]
	r.topics = make([][]byte, count)
	var err error
	for i := range r.topics {
		if r.topics[i], b, err = takeBytes(b); err != nil {
			return r, err
		}
	}
	if r.typ, b, err = takeBytes(b); err != nil {
		return r, err
	}
	if r.data, b, err = takeBytes(b); err != nil {
		return r, err
	}
	if len(b) != 0 {
		return r, errCorrupt
	}
	return r, nil
}

func takeBytes(b []byte) (field, rest []byte, err error) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return nil, nil, errCorrupt
	}
	b = b[n:]
	return b[:l:l], b[l:], nil
}

// message copies r into a new Message of epoch.
func (r *rawRecord) message(epoch string) *pubsub.Message {
	m := &pubsub.Message{
		Topics:  make([]string, len(r.topics)),
		Type:    string(r.typ),
		Data:    string(r.data),
		Retain:  r.flags&flagRetain != 0,
		Final:   r.flags&flagFinal != 0,
		Private: r.flags&flagPrivate != 0,
		Pos:     pubsub.Position{Epoch: epoch, Offset: r.offset},
		Time:    time.Unix(0, r.time),
	}
	for i, t := range r.topics {
		m.Topics[i] = string(t)
	}
	return m
}

// size is what the record counts against Retention.MaxBytes: the size of
// its message, as pubsub.Message.Size reckons it.
func (r *rawRecord) size(epoch string) int64 {
	n := len(r.typ) + len(r.data) + len(epoch) + 96
	for _, t := range r.topics {
		n += len(t) + 16
	}
	return int64(n)
}

// decodeMessage parses and copies a stored record.
func decodeMessage(b []byte, epoch string) (*pubsub.Message, error) {
	r, err := parseRecord(b)
	if err != nil {
		return nil, err
	}
	return r.message(epoch), nil
}

// be64 encodes an offset as a key that sorts in offset order.
func be64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v)
}

func fromBE64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: key of %d bytes", errCorrupt, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
