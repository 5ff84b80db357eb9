package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"

	"github.com/heraldpush/herald/pubsub"
)

// The file's layout, one bucket each:
//
//	meta      "epoch" → epoch; "seq" → last offset given; "forgotten" →
//	          highest offset of any forgotten topic; "bytes" → history size
//	          (by Message.Size); "version" → layoutVersion (1: records
//	          of version 1 only; 2: records of versions 1 and 2)
//	log       be64(offset) → record: the history, in offset order
//	idx       lp(topic) be64(offset) → empty: each topic's offsets
//	topics    topic → uvarint count, uvarint evicted, uvarint bytes,
//	          uvarint last: messages of the topic in history, highest
//	          offset evicted from it, their size, the size of the newest
//	retained  topic → record of its latest retained message
//	finals    topic → record of its final message
//	finq      be64(final time) topic → empty: finished topics by age
//	fair      be64(evictable bytes) topic → empty: the topics whose history
//	          the byte bound may cut, by bytes held but the newest message
//	          (see enforceBytes)
//	ids       message ID → uvarint offset, varint time: the messages
//	          published with an ID (Message.ID) in the last
//	          pubsub.DedupeWindow, for idempotent publishing
//	idq       be64(time) ID → empty: the same, oldest first
//
// lp(topic) is the topic's length as a uvarint followed by the topic, so that
// no topic's keys are a prefix of another's.
var (
	bucketMeta     = []byte("meta")
	bucketLog      = []byte("log")
	bucketIdx      = []byte("idx")
	bucketTopics   = []byte("topics")
	bucketRetained = []byte("retained")
	bucketFinals   = []byte("finals")
	bucketFinq     = []byte("finq")
	bucketFair     = []byte("fair")
	bucketIDs      = []byte("ids")
	bucketIDQ      = []byte("idq")

	keyEpoch     = []byte("epoch")
	keySeq       = []byte("seq")
	keyForgotten = []byte("forgotten")
	keyBytes     = []byte("bytes")
	keyVersion   = []byte("version")
	// keyFair marks a file whose topics count their bytes and fill the
	// fair bucket (files written before have neither: Open adds them).
	keyFair = []byte("fair")
)

// Layout versions: a file of version 1 (written by releases before
// metadata became fields) is read as it is, and marked version 2 when
// opened.
const (
	layoutVersion1 = 1
	layoutVersion  = 2
)

var allBuckets = [][]byte{bucketMeta, bucketLog, bucketIdx, bucketTopics, bucketRetained, bucketFinals, bucketFinq, bucketFair, bucketIDs, bucketIDQ}

// store is the log inside one transaction. Its counters are loaded from meta
// and saved back by save (write transactions only).
type store struct {
	epoch                                                string
	meta, log, idx, topics, retained, finals, finq, fair *bbolt.Bucket
	ids, idq                                             *bbolt.Bucket // nil in a file opened without creating them
	seq, forgotten                                       uint64
	bytes                                                int64
}

// loadStore reads the log's state in tx. The buckets must exist.
func loadStore(tx *bbolt.Tx) (*store, error) {
	s := &store{
		meta:     tx.Bucket(bucketMeta),
		log:      tx.Bucket(bucketLog),
		idx:      tx.Bucket(bucketIdx),
		topics:   tx.Bucket(bucketTopics),
		retained: tx.Bucket(bucketRetained),
		finals:   tx.Bucket(bucketFinals),
		finq:     tx.Bucket(bucketFinq),
		fair:     tx.Bucket(bucketFair),
		ids:      tx.Bucket(bucketIDs),
		idq:      tx.Bucket(bucketIDQ),
	}
	if s.meta == nil || s.log == nil || s.idx == nil || s.topics == nil || s.retained == nil || s.finals == nil || s.finq == nil || s.fair == nil {
		return nil, fmt.Errorf("bolt: missing bucket: not a herald data file")
	}
	s.epoch = string(s.meta.Get(keyEpoch))
	s.seq = getUint(s.meta, keySeq)
	s.forgotten = getUint(s.meta, keyForgotten)
	s.bytes = int64(getUint(s.meta, keyBytes))
	// The log is appended to in key order: full pages pack it best.
	s.log.FillPercent = 0.9
	return s, nil
}

// save writes the counters back to meta.
func (s *store) save() error {
	if err := s.meta.Put(keySeq, binary.AppendUvarint(nil, s.seq)); err != nil {
		return err
	}
	if err := s.meta.Put(keyForgotten, binary.AppendUvarint(nil, s.forgotten)); err != nil {
		return err
	}
	return s.meta.Put(keyBytes, binary.AppendUvarint(nil, uint64(max(s.bytes, 0))))
}

func getUint(b *bbolt.Bucket, key []byte) uint64 {
	v, _ := binary.Uvarint(b.Get(key))
	return v
}

// topicMeta is a topic's entry in the topics bucket.
type topicMeta struct {
	count   uint64 // messages of the topic in history
	evicted uint64 // highest offset evicted from the topic's history
	bytes   uint64 // size of those messages (by pubsub.Message.Size)
	last    uint64 // size of the newest of them (0 when count is 0)
}

// evictable is what the byte bound may take from the topic: every message
// but the newest.
func (tm topicMeta) evictable() uint64 {
	if tm.count < 2 || tm.bytes <= tm.last {
		return 0
	}
	return tm.bytes - tm.last
}

func (s *store) topicMeta(topic []byte) (topicMeta, bool) {
	v := s.topics.Get(topic)
	if v == nil {
		return topicMeta{}, false
	}
	var tm topicMeta
	for _, f := range []*uint64{&tm.count, &tm.evicted, &tm.bytes, &tm.last} {
		x, n := binary.Uvarint(v)
		if n <= 0 {
			break
		}
		*f, v = x, v[n:]
	}
	return tm, true
}

// putTopicMeta writes topic's entry and keeps its place in the fair bucket.
func (s *store) putTopicMeta(topic []byte, tm topicMeta) error {
	if tm.count == 0 {
		tm.bytes, tm.last = 0, 0
	}
	if err := s.unfair(topic); err != nil {
		return err
	}
	v := binary.AppendUvarint(nil, tm.count)
	v = binary.AppendUvarint(v, tm.evicted)
	v = binary.AppendUvarint(v, tm.bytes)
	v = binary.AppendUvarint(v, tm.last)
	if err := s.topics.Put(topic, v); err != nil {
		return err
	}
	if e := tm.evictable(); e > 0 {
		return s.fair.Put(fairKey(e, topic), nil)
	}
	return nil
}

// deleteTopic forgets topic's entry.
func (s *store) deleteTopic(topic []byte) error {
	if err := s.unfair(topic); err != nil {
		return err
	}
	return s.topics.Delete(topic)
}

// unfair removes topic's key from the fair bucket, if it has one.
func (s *store) unfair(topic []byte) error {
	if old, ok := s.topicMeta(topic); ok {
		if e := old.evictable(); e > 0 {
			return s.fair.Delete(fairKey(e, topic))
		}
	}
	return nil
}

func fairKey(evictable uint64, topic []byte) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(topic)), evictable), topic...)
}

func idxPrefix(topic []byte) []byte {
	p := binary.AppendUvarint(make([]byte, 0, len(topic)+10), uint64(len(topic)))
	return append(p, topic...)
}

func idxKey(topic []byte, off uint64) []byte {
	return binary.BigEndian.AppendUint64(idxPrefix(topic), off)
}

func finqKey(t int64, topic []byte) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(t)), topic...)
}

// errAlreadyPublished: a message whose ID was published within the dedupe
// window; its position is the first one's and nothing is stored.
var errAlreadyPublished = errors.New("bolt: already published")

// errRefused wraps the errors that refuse one message without failing the
// transaction.
type errRefused struct{ err error }

func (e errRefused) Error() string { return e.err.Error() }
func (e errRefused) Unwrap() error { return e.err }

// publish appends m at the next offset, with time now (Unix nanoseconds),
// and applies per-topic retention. A refusal (a finished topic) is returned
// as errRefused and changes nothing. With dedupe, a message whose ID was
// published within the dedupe window is not stored again, and m's ID is
// remembered.
func (s *store) publish(m *pubsub.Message, now int64, maxEvents int, dedupe bool) error {
	if dedupe && m.ID != "" && s.ids != nil {
		if v := s.ids.Get([]byte(m.ID)); v != nil {
			off, n := binary.Uvarint(v)
			t, k := binary.Varint(v[max(n, 0):])
			if n > 0 && k > 0 && now-t <= int64(pubsub.DedupeWindow) {
				// Published again: the first one stands.
				m.Pos, m.Time = pubsub.Position{Epoch: s.epoch, Offset: off}, unixTime(t)
				return errAlreadyPublished
			}
		}
	}
	for i, t := range m.Topics {
		if s.finals.Get([]byte(t)) != nil {
			return errRefused{fmt.Errorf("%w: %q", pubsub.ErrTopicFinished, t)}
		}
		if slices.Contains(m.Topics[:i], t) {
			return errRefused{fmt.Errorf("bolt: publish: duplicate topic %q", t)}
		}
	}
	s.seq++
	m.Pos = pubsub.Position{Epoch: s.epoch, Offset: s.seq}
	m.Time = unixTime(now)
	rec := appendRecord(nil, m)
	if err := s.log.Put(be64(s.seq), rec); err != nil {
		return err
	}
	size := uint64(m.Size())
	s.bytes += int64(size)
	for _, t := range m.Topics {
		topic := []byte(t)
		tm, ok := s.topicMeta(topic)
		if !ok {
			// A topic new to the log: clients whose position is older
			// than a forgotten topic's messages may have missed some of
			// this one's, if it existed before.
			tm.evicted = s.forgotten
		}
		if err := s.idx.Put(idxKey(topic, s.seq), nil); err != nil {
			return err
		}
		tm.count++
		tm.bytes += size
		tm.last = size
		if m.Retain {
			if err := s.retained.Put(topic, rec); err != nil {
				return err
			}
		}
		if m.Final {
			if err := s.finals.Put(topic, rec); err != nil {
				return err
			}
			if err := s.finq.Put(finqKey(now, topic), nil); err != nil {
				return err
			}
		}
		for maxEvents > 0 && tm.count > uint64(maxEvents) {
			if err := s.evictFront(topic, &tm); err != nil {
				return err
			}
		}
		if err := s.putTopicMeta(topic, tm); err != nil {
			return err
		}
	}
	if !dedupe {
		return nil
	}
	return s.rememberID(m, now)
}

// rememberID records m's ID, and forgets the IDs older than the dedupe
// window.
func (s *store) rememberID(m *pubsub.Message, now int64) error {
	if m.ID == "" || s.ids == nil || s.idq == nil {
		return nil
	}
	c := s.idq.Cursor()
	for k, _ := c.First(); len(k) >= 8 && now-int64(binary.BigEndian.Uint64(k)) > int64(pubsub.DedupeWindow); k, _ = c.First() {
		key := bytes.Clone(k)
		if err := s.ids.Delete(key[8:]); err != nil {
			return err
		}
		if err := s.idq.Delete(key); err != nil {
			return err
		}
	}
	v := binary.AppendVarint(binary.AppendUvarint(nil, m.Pos.Offset), now)
	if err := s.ids.Put([]byte(m.ID), v); err != nil {
		return err
	}
	return s.idq.Put(append(binary.BigEndian.AppendUint64(nil, uint64(now)), m.ID...), nil)
}

// evictFront removes the oldest message of topic from its history.
func (s *store) evictFront(topic []byte, tm *topicMeta) error {
	p := idxPrefix(topic)
	k, _ := s.idx.Cursor().Seek(p)
	if k == nil || !bytes.HasPrefix(k, p) {
		tm.count = 0
		return nil
	}
	off, err := fromBE64(k[len(p):])
	if err != nil {
		return err
	}
	if err := s.idx.Delete(idxKey(topic, off)); err != nil {
		return err
	}
	tm.count--
	tm.evicted = max(tm.evicted, off)
	size, err := s.release(off)
	tm.bytes -= min(tm.bytes, uint64(size))
	return err
}

// release deletes the record at off if no topic's history holds it any
// more, and returns its size.
func (s *store) release(off uint64) (int64, error) {
	key := be64(off)
	v := s.log.Get(key)
	if v == nil {
		return 0, nil
	}
	r, err := parseRecord(v)
	if err != nil {
		return 0, fmt.Errorf("offset %d: %w", off, err)
	}
	size := r.size(s.epoch)
	for _, t := range r.topics {
		if s.idx.Get(idxKey(t, off)) != nil {
			return size, nil
		}
	}
	s.bytes -= size
	return size, s.log.Delete(key)
}

// oldest returns the offset and time of the oldest message in history.
func (s *store) oldest() (off uint64, t int64, ok bool, err error) {
	k, v := s.log.Cursor().First()
	if k == nil {
		return 0, 0, false, nil
	}
	if off, err = fromBE64(k); err != nil {
		return 0, 0, false, err
	}
	r, err := parseRecord(v)
	if err != nil {
		return 0, 0, false, fmt.Errorf("offset %d: %w", off, err)
	}
	return off, r.time, true, nil
}

// evictOldest removes the oldest message of the log from every topic that
// holds it, and forgets the topics left with nothing.
func (s *store) evictOldest() (bool, error) {
	k, v := s.log.Cursor().First()
	if k == nil {
		return false, nil
	}
	off, err := fromBE64(k)
	if err != nil {
		return false, err
	}
	r, err := parseRecord(v)
	if err != nil {
		return false, fmt.Errorf("offset %d: %w", off, err)
	}
	size := r.size(s.epoch)
	topics := make([][]byte, len(r.topics))
	for i, t := range r.topics {
		topics[i] = bytes.Clone(t)
	}
	if err := s.log.Delete(be64(off)); err != nil {
		return false, err
	}
	s.bytes -= size
	for _, topic := range topics {
		key := idxKey(topic, off)
		if s.idx.Get(key) == nil {
			continue
		}
		if err := s.idx.Delete(key); err != nil {
			return false, err
		}
		tm, _ := s.topicMeta(topic)
		tm.count = max(tm.count, 1) - 1
		tm.bytes -= min(tm.bytes, uint64(size))
		tm.evicted = max(tm.evicted, off)
		if tm.count == 0 && s.retained.Get(topic) == nil && s.finals.Get(topic) == nil {
			s.forgotten = max(s.forgotten, tm.evicted)
			err = s.deleteTopic(topic)
		} else {
			err = s.putTopicMeta(topic, tm)
		}
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

// clearTopic removes topic's history, retained and final state, and
// returns its meta and final offset (0 if none).
func (s *store) clearTopic(topic []byte) (topicMeta, uint64, error) {
	tm, _ := s.topicMeta(topic)
	p := idxPrefix(topic)
	var offs []uint64
	c := s.idx.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		off, err := fromBE64(k[len(p):])
		if err != nil {
			return tm, 0, err
		}
		offs = append(offs, off)
	}
	for _, off := range offs {
		if err := s.idx.Delete(idxKey(topic, off)); err != nil {
			return tm, 0, err
		}
		if _, err := s.release(off); err != nil {
			return tm, 0, err
		}
		tm.evicted = max(tm.evicted, off)
	}
	tm.count = 0
	var final uint64
	if v := s.finals.Get(topic); v != nil {
		r, err := parseRecord(v)
		if err != nil {
			return tm, 0, err
		}
		final = r.offset
		if err := s.finq.Delete(finqKey(r.time, topic)); err != nil {
			return tm, 0, err
		}
		if err := s.finals.Delete(topic); err != nil {
			return tm, 0, err
		}
	}
	return tm, final, s.retained.Delete(topic)
}

// purge drops topic's history, retained and final state. Clients resuming
// from before now are told their history was truncated.
func (s *store) purge(topic []byte) error {
	if _, ok := s.topicMeta(topic); !ok && s.retained.Get(topic) == nil && s.finals.Get(topic) == nil {
		return nil
	}
	tm, _, err := s.clearTopic(topic)
	if err != nil {
		return err
	}
	tm.evicted = s.seq
	return s.putTopicMeta(topic, tm)
}

// sweepDue reports whether sweep(cutoff) has anything to do.
func (s *store) sweepDue(cutoff int64) (bool, error) {
	_, t, ok, err := s.oldest()
	if err != nil || ok && t < cutoff {
		return err == nil, err
	}
	k, _ := s.finq.Cursor().First()
	return len(k) >= 8 && int64(binary.BigEndian.Uint64(k)) < cutoff, nil
}

// sweep applies age-based retention: messages older than cutoff leave
// history, topics finished before cutoff are forgotten.
func (s *store) sweep(cutoff int64) error {
	for {
		_, t, ok, err := s.oldest()
		if err != nil {
			return err
		}
		if !ok || t >= cutoff {
			break
		}
		if _, err := s.evictOldest(); err != nil {
			return err
		}
	}
	for {
		k, _ := s.finq.Cursor().First()
		if len(k) < 8 || int64(binary.BigEndian.Uint64(k)) >= cutoff {
			return nil
		}
		topic := bytes.Clone(k[8:])
		if err := s.finq.Delete(bytes.Clone(k)); err != nil {
			return err
		}
		tm, final, err := s.clearTopic(topic)
		if err != nil {
			return err
		}
		s.forgotten = max(s.forgotten, tm.evicted, final)
		if err := s.deleteTopic(topic); err != nil {
			return err
		}
	}
}

// enforceBytes evicts until history fits maxBytes, fairly (see
// pubsub.Retention.MaxBytes): the oldest message of the topic with the
// most evictable bytes (the last key of the fair bucket) each time, never
// a topic's newest message.
func (s *store) enforceBytes(maxBytes int64) error {
	for maxBytes > 0 && s.bytes > maxBytes {
		k, _ := s.fair.Cursor().Last()
		if k == nil {
			if first, _ := s.log.Cursor().First(); first == nil {
				s.bytes = 0 // nothing left: the count had drifted
			}
			return nil // only the topics' newest messages are left
		}
		if len(k) < 8 {
			return fmt.Errorf("%w: fair key of %d bytes", errCorrupt, len(k))
		}
		topic := bytes.Clone(k[8:])
		tm, ok := s.topicMeta(topic)
		if !ok || tm.evictable() == 0 {
			// A stale key: drop it.
			if err := s.fair.Delete(bytes.Clone(k)); err != nil {
				return err
			}
			continue
		}
		if err := s.evictFront(topic, &tm); err != nil {
			return err
		}
		if err := s.putTopicMeta(topic, tm); err != nil {
			return err
		}
	}
	return nil
}

// countBytes fills in the byte counts of the topics of a file written
// before they were kept, and the fair bucket (once per file).
func (s *store) countBytes() error {
	if s.meta.Get(keyFair) != nil {
		return nil
	}
	var topics [][]byte
	err := s.topics.ForEach(func(k, _ []byte) error {
		topics = append(topics, bytes.Clone(k))
		return nil
	})
	if err != nil {
		return err
	}
	c := s.idx.Cursor()
	for _, topic := range topics {
		tm, _ := s.topicMeta(topic)
		tm.count, tm.bytes, tm.last = 0, 0, 0
		p := idxPrefix(topic)
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			off, err := fromBE64(k[len(p):])
			if err != nil {
				return err
			}
			v := s.log.Get(be64(off))
			if v == nil {
				continue
			}
			r, err := parseRecord(v)
			if err != nil {
				return fmt.Errorf("offset %d: %w", off, err)
			}
			size := uint64(r.size(s.epoch))
			tm.count++
			tm.bytes += size
			tm.last = size
		}
		if err := s.putTopicMeta(topic, tm); err != nil {
			return err
		}
	}
	return s.meta.Put(keyFair, []byte{1})
}

// trimTopics applies maxEvents to every topic (after a restart with a lower
// limit).
func (s *store) trimTopics(maxEvents int) error {
	if maxEvents <= 0 {
		return nil
	}
	var over [][]byte
	err := s.topics.ForEach(func(k, v []byte) error {
		if n, _ := binary.Uvarint(v); n > uint64(maxEvents) {
			over = append(over, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, topic := range over {
		tm, _ := s.topicMeta(topic)
		for tm.count > uint64(maxEvents) {
			if err := s.evictFront(topic, &tm); err != nil {
				return err
			}
		}
		if err := s.putTopicMeta(topic, tm); err != nil {
			return err
		}
	}
	return nil
}

// snapshot reads the state a subscriber needs (see pubsub.Snapshot).
func (s *store) snapshot(q pubsub.Query) (pubsub.Snapshot, error) {
	snap := pubsub.Snapshot{Head: pubsub.Position{Epoch: s.epoch, Offset: s.seq}}
	for _, t := range q.Topics {
		if v := s.finals.Get([]byte(t)); v != nil {
			r, err := parseRecord(v)
			if err != nil {
				return snap, fmt.Errorf("final of %q: %w", t, err)
			}
			if snap.Finals == nil {
				snap.Finals = make(map[string]pubsub.Position)
			}
			snap.Finals[t] = pubsub.Position{Epoch: s.epoch, Offset: r.offset}
		}
	}
	if q.After == nil {
		var err error
		snap.Retained, err = s.retainedOf(q.Topics)
		return snap, err
	}
	after := q.After.Offset
	if q.After.Epoch != s.epoch {
		snap.EpochChanged = true
		after = 0
	}
	var offs []uint64
	c := s.idx.Cursor()
	for _, t := range q.Topics {
		topic := []byte(t)
		tm, ok := s.topicMeta(topic)
		if !ok && after < s.forgotten || ok && after < tm.evicted {
			snap.Truncated = true
		}
		p := idxPrefix(topic)
		for k, _ := c.Seek(idxKey(topic, after+1)); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			off, err := fromBE64(k[len(p):])
			if err != nil {
				return snap, err
			}
			offs = append(offs, off)
		}
	}
	slices.Sort(offs)
	offs = slices.Compact(offs)
	snap.Events = make([]*pubsub.Message, 0, len(offs))
	for _, off := range offs {
		v := s.log.Get(be64(off))
		if v == nil {
			return snap, fmt.Errorf("%w: offset %d indexed but not in the log", errCorrupt, off)
		}
		m, err := decodeMessage(v, s.epoch)
		if err != nil {
			return snap, fmt.Errorf("offset %d: %w", off, err)
		}
		snap.Events = append(snap.Events, m)
	}
	if snap.Truncated || snap.EpochChanged {
		var err error
		snap.Retained, err = s.retainedOf(q.Topics)
		return snap, err
	}
	return snap, nil
}

// retainedOf returns the retained messages of topics, each once, in
// position order.
func (s *store) retainedOf(topics []string) ([]*pubsub.Message, error) {
	var out []*pubsub.Message
	for _, t := range topics {
		v := s.retained.Get([]byte(t))
		if v == nil {
			continue
		}
		r, err := parseRecord(v)
		if err != nil {
			return nil, fmt.Errorf("retained of %q: %w", t, err)
		}
		if !slices.ContainsFunc(out, func(m *pubsub.Message) bool { return m.Pos.Offset == r.offset }) {
			out = append(out, r.message(s.epoch))
		}
	}
	slices.SortFunc(out, func(a, b *pubsub.Message) int { return cmpUint(a.Pos.Offset, b.Pos.Offset) })
	return out, nil
}

// topicInfos lists the topics the log holds, sorted by name.
func (s *store) topicInfos() ([]pubsub.TopicInfo, error) {
	var out []pubsub.TopicInfo
	err := s.topics.ForEach(func(k, v []byte) error {
		n, _ := binary.Uvarint(v)
		out = append(out, pubsub.TopicInfo{
			Topic:    string(k),
			Messages: int(n),
			Retained: s.retained.Get(k) != nil,
			Finished: s.finals.Get(k) != nil,
		})
		return nil
	})
	return out, err
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
