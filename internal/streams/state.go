package streams

import (
	"mime"
	"strconv"
	"strings"
	"time"

	"github.com/heraldpush/herald/pubsub"
)

// Meta keys of a stream's messages (pubsub.Message.Meta).
const (
	metaOp        = "ds.op"           // "create", "append" or "delete"
	metaType      = "ds.content-type" // create: the stream's content type
	metaTTL       = "ds.ttl"          // create: Stream-TTL, seconds
	metaExpires   = "ds.expires-at"   // create: Stream-Expires-At, RFC 3339 as given
	metaForkFrom  = "ds.fork-from"    // create: the source stream's path
	metaForkAt    = "ds.fork-at"      // create: the fork offset in the source
	metaForkSub   = "ds.fork-sub"     // create: the fork's sub-offset (bytes or JSON messages)
	metaDepth     = "ds.depth"        // create: a fork's depth (its source's plus one)
	metaProducer  = "ds.producer"     // append: Producer-Id
	metaEpoch     = "ds.producer-epoch"
	metaSeq       = "ds.producer-seq"
	metaStreamSeq = "ds.seq" // append: Stream-Seq

	opCreate = "create"
	opAppend = "append"
	opDelete = "delete"
	// opSoftDelete marks an open stream soft-deleted in its own log (its
	// references say so too), so that a write decided before conflicts.
	opSoftDelete = "soft-delete"
)

// producer is an idempotent producer's state on a stream.
type producer struct {
	epoch, seq int64
}

// state is what a node knows of a stream: everything is derived from the
// stream's log by apply, in order.
type state struct {
	// tail is the position of the stream's newest message (zero: none).
	tail pubsub.Position
	// exists: a create message was applied and no delete after it.
	exists bool

	created     pubsub.Position // the create message's position
	contentType string          // as created (its media type lower-cased)
	ttl         int64           // seconds; -1: none
	expiresRaw  string          // Stream-Expires-At as given; "" none
	expiresAt   time.Time
	forkFrom    string // source stream path, "" when not a fork
	forkAt      Offset // the last offset of the source the fork inherits (Start: none)
	depth       int    // 0, or a fork's depth: the segment of its own data
	forkSub     int64  // the sub-offset the fork was created with

	closed     bool
	soft       bool   // soft-deleted (opSoftDelete)
	closedBy   string // "<producer>\x00<epoch>\x00<seq>" of the producer that closed it, if any
	lastWrite  time.Time
	producers  map[string]producer
	lastSeq    string // the last Stream-Seq
	hasLastSeq bool
}

// apply updates st with m, the stream's next message.
func (st *state) apply(m *pubsub.Message) {
	st.tail = m.Pos
	switch m.Meta[metaOp] {
	case opCreate:
		*st = state{tail: m.Pos, exists: true, created: m.Pos, contentType: m.Meta[metaType], ttl: -1,
			expiresRaw: m.Meta[metaExpires], forkFrom: m.Meta[metaForkFrom], lastWrite: m.Time}
		if v, ok := m.Meta[metaTTL]; ok {
			st.ttl, _ = strconv.ParseInt(v, 10, 64)
		}
		if st.expiresRaw != "" {
			st.expiresAt, _ = time.Parse(time.RFC3339Nano, st.expiresRaw)
		}
		st.forkSub, _ = strconv.ParseInt(m.Meta[metaForkSub], 10, 64)
		st.depth, _ = strconv.Atoi(m.Meta[metaDepth])
		st.forkAt = Start
		if v := m.Meta[metaForkAt]; v != "" {
			if _, o, err := parseOffset(v); err == nil {
				st.forkAt = o
			}
		}
		st.closed = m.Final
	case opAppend:
		st.lastWrite = m.Time
		if id := m.Meta[metaProducer]; id != "" {
			e, _ := strconv.ParseInt(m.Meta[metaEpoch], 10, 64)
			s, _ := strconv.ParseInt(m.Meta[metaSeq], 10, 64)
			if st.producers == nil {
				st.producers = make(map[string]producer)
			}
			st.producers[id] = producer{epoch: e, seq: s}
			if m.Final {
				st.closedBy = id + "\x00" + m.Meta[metaEpoch] + "\x00" + m.Meta[metaSeq]
			}
		}
		if v, ok := m.Meta[metaStreamSeq]; ok {
			st.lastSeq, st.hasLastSeq = v, true
		}
		if m.Final {
			st.closed = true
		}
	case opSoftDelete:
		st.soft = true
	case opDelete:
		*st = state{tail: m.Pos}
	}
}

// sameConfig reports whether a create request asks for the stream st
// is: the same content type, TTL or expiry, and fork (what a fork's
// request leaves out it takes from its source, so it is not compared).
func (st *state) sameConfig(req createReq) bool {
	if st.forkFrom != req.forkFrom {
		return false
	}
	if req.forkFrom != "" {
		if req.forkAtGiven && st.forkAt != req.forkAt || st.forkSub != req.forkSub {
			return false
		}
		if req.ctGiven && mediaType(st.contentType) != mediaType(req.contentType) {
			return false
		}
		return !req.expiryGiven || st.ttl == req.ttl && st.expiresAt.Equal(req.expiresAt)
	}
	return mediaType(st.contentType) == mediaType(req.contentType) && st.ttl == req.ttl && st.expiresAt.Equal(req.expiresAt)
}

// expired reports whether the stream's TTL or expiry time has passed at
// now; lastRead is this node's last read of it (a TTL is a sliding window
// over reads and writes).
func (st *state) expired(now, lastRead time.Time) bool {
	if !st.expiresAt.IsZero() && !now.Before(st.expiresAt) {
		return true
	}
	if st.ttl >= 0 {
		last := st.lastWrite
		if lastRead.After(last) {
			last = lastRead
		}
		return !now.Before(last.Add(time.Duration(st.ttl) * time.Second))
	}
	return false
}

// mediaType returns ct's media type, lower-cased ("" when ct does not
// parse).
func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return strings.ToLower(mt)
}

// isJSON reports whether ct is the JSON mode's content type.
func isJSON(ct string) bool { return mediaType(ct) == "application/json" }

// isText reports whether an SSE read of a stream of type ct carries its
// data as text (text/* and JSON); other types are sent in base64.
func isText(ct string) bool {
	mt := mediaType(ct)
	return strings.HasPrefix(mt, "text/") || mt == "application/json"
}
