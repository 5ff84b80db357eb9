package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/internal/codec"
)

// A record is a message as stored on disk:
//
//	version byte (2)
//	flags   byte (1 retain, 2 final, 4 private)
//	offset  uvarint
//	time    varint (Unix nanoseconds)
//	topics  uvarint count, then each as uvarint length + bytes
//	type    uvarint length + bytes
//	extra   id, other-shard topics, metadata (see codec.AppendExtra)
//	data    uvarint length + bytes
//
// Version 1 records (written by releases before metadata became fields)
// have no extra part; their data may start with a legacy metadata line,
// which reading moves to Meta (codec.LegacyMeta). The epoch is not stored
// per record: a file holds one log of one epoch.
const (
	recordVersion1 = 1
	recordVersion  = 2
)

var errCorrupt = errors.New("bolt: corrupt record")

// appendRecord appends m's record to dst.
func appendRecord(dst []byte, m *pubsub.Message) []byte {
	dst = append(dst, recordVersion, codec.Flags(m))
	dst = binary.AppendUvarint(dst, m.Pos.Offset)
	dst = binary.AppendVarint(dst, m.Time.UnixNano())
	dst = binary.AppendUvarint(dst, uint64(len(m.Topics)))
	for _, t := range m.Topics {
		dst = appendBytes(dst, t)
	}
	dst = appendBytes(dst, m.Type)
	dst = codec.AppendExtra(dst, m)
	return appendBytes(dst, m.Data)
}

func appendBytes(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// rawRecord is a parsed record whose byte slices point into the stored
// value: valid only inside the transaction that read it.
type rawRecord struct {
	version byte
	flags   byte
	offset  uint64
	time    int64
	topics  [][]byte
	typ     []byte
	extra   []byte // version 2: id, other-shard topics, metadata
	data    []byte
}

// parseRecord parses b without copying.
func parseRecord(b []byte) (rawRecord, error) {
	var r rawRecord
	err := r.parse(b)
	return r, err
}

// parse parses b into r without copying, reusing r.topics' array: with a
// rawRecord reused from record to record it allocates nothing.
func (r *rawRecord) parse(b []byte) error {
	topics := r.topics[:0]
	*r = rawRecord{}
	if len(b) < 2 || b[0] != recordVersion && b[0] != recordVersion1 {
		return errCorrupt
	}
	r.version, r.flags = b[0], b[1]
	b = b[2:]
	var n int
	if r.offset, n = binary.Uvarint(b); n <= 0 {
		return errCorrupt
	}
	b = b[n:]
	if r.time, n = binary.Varint(b); n <= 0 {
		return errCorrupt
	}
	b = b[n:]
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return errCorrupt
	}
	b = b[n:]
	var err error
	for range count {
		var t []byte
		if t, b, err = takeBytes(b); err != nil {
			return err
		}
		topics = append(topics, t)
	}
	r.topics = topics
	if r.typ, b, err = takeBytes(b); err != nil {
		return err
	}
	if r.version == recordVersion {
		rest, err := codec.SkipExtra(b)
		if err != nil {
			return errCorrupt
		}
		r.extra, b = b[:len(b)-len(rest)], rest
	}
	if r.data, b, err = takeBytes(b); err != nil {
		return err
	}
	if len(b) != 0 {
		return errCorrupt
	}
	return nil
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
		Topics: make([]string, len(r.topics)),
		Type:   string(r.typ),
		Pos:    pubsub.Position{Epoch: epoch, Offset: r.offset},
		Time:   time.Unix(0, r.time),
	}
	codec.SetFlags(m, r.flags)
	for i, t := range r.topics {
		m.Topics[i] = string(t)
	}
	if r.version == recordVersion {
		m.Data = string(r.data)
		_ = (&codec.Reader{B: r.extra}).Extra(m) // checked by parseRecord
	} else {
		m.Meta, m.Data = codec.LegacyMeta(string(r.data))
	}
	return m
}

// size is what the record counts against Retention.MaxBytes: the size of
// its message, as pubsub.Message.Size reckons it.
func (r *rawRecord) size(epoch string) int64 {
	if len(r.extra) > 3 {
		// Metadata counts as Message.Size counts it: decode (rare). (A
		// version 1 record counts its legacy metadata line as data, as
		// the release that wrote it did.)
		return int64(r.message(epoch).Size())
	}
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
