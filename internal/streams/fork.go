package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/pubsub"
)

// Forks. A fork's create message names its source and the source's last
// position it inherits (and a sub-offset's prefix of the next append,
// copied into its own create message); reads of a fork read the source's
// data up to there, then the fork's own. A source keeps the forks that
// read it in a side topic of its own, its references: "ds-refs/<path>",
// with "ref" and "unref" messages and a "delete" that soft-deletes a source
// that forks still read (gone for clients, kept for the forks); when the
// last fork of a soft-deleted source goes, the source is deleted, and so
// up the chain. Lock order: a fork's entry, then its source's.

// Ops of the references topic.
const (
	refOp    = "ds.refs-op"
	refFork  = "ds.refs-fork"
	opRef    = "ref"
	opUnref  = "unref"
	refsName = "ds-refs/"
)

// refState is a stream's references: the forks that read it, and whether
// it was deleted while they do.
type refState struct {
	tail  pubsub.Position
	forks map[string]bool
	soft  bool
}

func (rs *refState) apply(m *pubsub.Message) {
	rs.tail = m.Pos
	switch m.Meta[refOp] {
	case opRef:
		if rs.forks == nil {
			rs.forks = make(map[string]bool)
		}
		rs.forks[m.Meta[refFork]] = true
	case opUnref:
		delete(rs.forks, m.Meta[refFork])
	case opDelete:
		rs.soft = true
	}
}

func (rs *refState) at() pubsub.Position { return rs.tail }

func (rs *refState) reset() { *rs = refState{} }

func refsTopic(topic string) string { return refsName + strings.TrimPrefix(topic, TopicPrefix) }

// refreshRefs brings e.refs up to the stream's references topic. e.mu is
// held.
func (s *Service) refreshRefs(ctx context.Context, e *entry, topic string) error {
	_, err := s.replay(ctx, refsTopic(topic), &e.refs)
	return err
}

// addRef appends one message to the stream's references (on their tail,
// deciding again on a conflict). e.mu is held.
func (s *Service) addRef(ctx context.Context, e *entry, topic string, meta map[string]string) error {
	rt := refsTopic(topic)
	for range maxRetries {
		m := &pubsub.Message{Topics: []string{rt}, Meta: meta}
		_, err := s.cond.PublishIf(ctx, e.refs.tail, m)
		if err == nil {
			e.refs.apply(m)
			return nil
		}
		if !errors.Is(err, pubsub.ErrConflict) {
			return fmt.Errorf("streams: references of %s: %w", topic, err)
		}
		if err := s.refreshRefs(ctx, e, topic); err != nil {
			return err
		}
	}
	return fmt.Errorf("streams: references of %s: too many conflicting writes", topic)
}

// deleteLocked deletes a loaded stream: softly while forks read it,
// otherwise for good (then its source loses a reference). e.mu is held.
func (s *Service) deleteLocked(ctx context.Context, e *entry, topic string) (presence, error) {
	if len(e.refs.forks) > 0 {
		if err := s.addRef(ctx, e, topic, map[string]string{refOp: opDelete}); err != nil {
			return absent, err
		}
		// An open stream says so in its own log too: a write decided on
		// an older tail, on any node, conflicts and reads it.
		for range maxRetries {
			if e.st.closed || e.st.soft {
				break
			}
			m := &pubsub.Message{Topics: []string{topic}, Meta: map[string]string{metaOp: opSoftDelete}}
			_, err := s.cond.PublishIf(ctx, e.st.tail, m)
			if err == nil {
				e.st.apply(m)
				break
			}
			if !errors.Is(err, pubsub.ErrConflict) && !errors.Is(err, pubsub.ErrTopicFinished) {
				return absent, fmt.Errorf("streams: delete %s: %w", topic, err)
			}
			if err := s.refresh(ctx, e, topic); err != nil {
				return absent, err
			}
		}
		return softDeleted, nil
	}
	src := e.st.forkFrom
	if err := s.remove(ctx, e, topic); err != nil {
		return absent, err
	}
	if err := s.purger.Purge(ctx, refsTopic(topic)); err != nil {
		return absent, fmt.Errorf("streams: delete %s: %w", topic, err)
	}
	e.refs = refState{}
	if src != "" {
		if err := s.unref(ctx, src, topic); err != nil {
			return absent, err
		}
	}
	return absent, nil
}

// unref removes fork from src's references, and deletes src for good when
// it was soft-deleted and fork was its last.
func (s *Service) unref(ctx context.Context, src, fork string) error {
	e := s.entryOf(src)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := s.refresh(ctx, e, src); err != nil {
		return err
	}
	if !e.st.exists {
		return nil
	}
	if err := s.refreshRefs(ctx, e, src); err != nil {
		return err
	}
	if !e.refs.forks[fork] {
		return nil
	}
	if err := s.addRef(ctx, e, src, map[string]string{refOp: opUnref, refFork: fork}); err != nil {
		return err
	}
	if e.refs.soft && len(e.refs.forks) == 0 {
		_, err := s.deleteLocked(ctx, e, src)
		return err
	}
	return nil
}

// sourceInfo returns a fork's source's state, soft-deleted or not.
func (s *Service) sourceInfo(ctx context.Context, src string) (Info, error) {
	e := s.entryOf(src)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := s.refresh(ctx, e, src); err != nil {
		return Info{}, err
	}
	if !e.st.exists {
		return Info{}, fmt.Errorf("streams: the source %s of a fork is gone", src)
	}
	return e.st.info(), nil
}

// item is a message of a stream's data with its offset's segment.
type item struct {
	m   *pubsub.Message
	seg int
}

func (it item) offset() Offset { return Offset{Seg: it.seg, Pos: it.m.Pos} }

// ownStart returns the offset a read of the stream's own data continues
// after when it starts at after: after itself when it is in the stream's
// own segment, else just before the stream's create message.
func ownStart(in Info, after Offset) Offset {
	if !after.IsStart() && after.Seg == in.Depth {
		return after
	}
	return Offset{Seg: in.Depth, Pos: pubsub.Position{Epoch: in.Created.Epoch, Offset: in.Created.Offset - 1}}
}

// readStream returns the data of the stream in after the offset after, as
// Read does: a fork's inherited data, then its own.
func (s *Service) readStream(ctx context.Context, topic string, in Info, after Offset, maxBytes int) ([]item, bool, error) {
	var out []item
	if in.ForkFrom != "" && after.Less(in.ForkAt) {
		inh, err := s.readInherited(ctx, in, after)
		if err != nil {
			return nil, false, err
		}
		out = inh
		for _, it := range inh {
			maxBytes -= len(it.m.Data)
		}
	}
	msgs, upToDate, err := s.Read(ctx, topic, ownStart(in, after).Pos, max(maxBytes, 1))
	if err != nil {
		return nil, false, err
	}
	for _, m := range msgs {
		out = append(out, item{m: m, seg: in.Depth})
	}
	return out, upToDate, nil
}

// readInherited returns the data a fork inherits from its source after the
// offset after (up to its fork offset).
func (s *Service) readInherited(ctx context.Context, in Info, after Offset) ([]item, error) {
	if !after.Less(in.ForkAt) {
		return nil, nil
	}
	src, err := s.sourceInfo(ctx, in.ForkFrom)
	if err != nil {
		return nil, err
	}
	var out []item
	for {
		items, _, err := s.readStream(ctx, in.ForkFrom, src, after, 1<<30)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, it := range items {
			if in.ForkAt.Less(it.offset()) {
				return out, nil
			}
			out = append(out, it)
			after = it.offset()
			n++
		}
		if n == 0 {
			return out, nil
		}
	}
}

// parseFork reads a PUT's fork headers into req: Stream-Forked-From (a
// stream path under the handler's prefix), Stream-Fork-Offset (default:
// the source's tail) and Stream-Fork-Sub-Offset.
func (h *Handler) parseFork(r *http.Request, req *createReq) error {
	from := r.Header.Get("Stream-Forked-From")
	off, hasOff := r.Header["Stream-Fork-Offset"]
	sub, hasSub := r.Header["Stream-Fork-Sub-Offset"]
	if from == "" {
		if hasOff || hasSub {
			return access.BadRequest("Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From")
		}
		return nil
	}
	path := strings.TrimPrefix(from, h.Prefix)
	if i := strings.Index(from, "://"); i >= 0 {
		if j := strings.Index(from[i+3:], "/"); j >= 0 {
			path = strings.TrimPrefix(from[i+3+j:], h.Prefix)
		}
	}
	if path == "" || path == from {
		return access.BadRequest("Stream-Forked-From must be a stream path under %s (got %q)", h.Prefix, clipStr(from))
	}
	req.forkFrom = TopicPrefix + path
	req.ctGiven = r.Header.Get("Content-Type") != ""
	req.expiryGiven = req.ttl >= 0 || req.expiresRaw != ""
	if hasOff {
		kind, o, err := parseOffset(off[0])
		if err != nil || kind == offsetNow {
			return access.BadRequest("malformed Stream-Fork-Offset %q", clipStr(off[0]))
		}
		req.forkAt, req.forkAtGiven = o, true
	}
	if hasSub {
		n, ok := parseDecimal(sub[0], maxSafeInt)
		if !ok {
			return access.BadRequest("Stream-Fork-Sub-Offset must be a non-negative integer (got %q)", clipStr(sub[0]))
		}
		if n > 0 && !hasOff {
			return access.BadRequest("Stream-Fork-Sub-Offset needs Stream-Fork-Offset")
		}
		req.forkSub = n
	}
	return nil
}

// create creates a stream, or a fork of another.
func (h *Handler) create(r *http.Request, topic string, req createReq) (Info, bool, error) {
	if req.forkFrom == "" {
		return h.Service.createStream(r.Context(), topic, req)
	}
	if _, err := access.Ask(h.Access, r, access.Query{Action: access.Subscribe, Face: access.FaceStreams, Topics: []string{req.forkFrom}}); err != nil {
		return Info{}, false, err
	}
	s := h.Service
	req.resolve = func(req *createReq) error { return s.resolveFork(r.Context(), topic, req) }
	return s.createStream(r.Context(), topic, req)
}

// resolveFork checks a fork's source and completes req from it: the fork
// offset, content type, TTL or expiry it leaves out, and the prefix of its
// sub-offset; it adds the fork to the source's references (req.release
// removes it).
func (s *Service) resolveFork(ctx context.Context, topic string, req *createReq) error {
	src := req.forkFrom
	e := s.entryOf(src)
	e.mu.Lock()
	defer e.mu.Unlock()
	p, err := s.load(ctx, e, src)
	switch {
	case err != nil:
		return err
	case p == absent:
		return errNotFound()
	case p == softDeleted:
		return refuse(http.StatusConflict, "the source stream was deleted")
	}
	in := e.st.info()
	tail := in.TailOffset()
	if !req.forkAtGiven {
		req.forkAt = tail
	}
	if at := req.forkAt; !at.IsStart() && (tail.Less(at) || at.Seg == in.Depth && at.Pos.Epoch != in.Tail.Epoch) {
		return refuse(http.StatusBadRequest, "Stream-Fork-Offset %s is beyond the source's tail %s", at, tail)
	}
	if req.depth = in.Depth + 1; req.depth > maxDepth {
		return refuse(http.StatusBadRequest, "a chain of forks is at most %d deep", maxDepth)
	}
	if req.ctGiven && mediaType(req.contentType) != mediaType(in.ContentType) {
		return refuse(http.StatusConflict, "content type %q does not match the source's %q", clipStr(req.contentType), in.ContentType)
	}
	req.contentType = in.ContentType
	if !req.expiryGiven {
		req.ttl, req.expiresRaw = in.TTL, in.ExpiresAt
		req.expiresAt = e.st.expiresAt
	}
	if req.forkSub > 0 {
		prefix, err := s.subPrefix(ctx, src, in, req.forkAt, req.forkSub)
		if err != nil {
			return err
		}
		switch {
		case req.body == "":
			req.body = prefix
		case isJSON(in.ContentType):
			req.body = prefix + "," + req.body
		default:
			req.body = prefix + req.body
		}
	}
	if err := s.addRef(ctx, e, src, map[string]string{refOp: opRef, refFork: topic}); err != nil {
		return err
	}
	req.release = func(ctx context.Context) { _ = s.unref(ctx, src, topic) }
	return nil
}

// subPrefix returns the first n bytes (JSON mode: messages) of the first
// append after the position at in the source's data.
func (s *Service) subPrefix(ctx context.Context, src string, in Info, at Offset, n int64) (string, error) {
	after := at
	for {
		items, _, err := s.readStream(ctx, src, in, after, 1)
		if err != nil {
			return "", err
		}
		if len(items) == 0 {
			return "", refuse(http.StatusBadRequest, "Stream-Fork-Sub-Offset %d: there is no append after the fork offset", n)
		}
		for _, it := range items {
			m := it.m
			after = it.offset()
			if m.Data == "" {
				continue
			}
			if !isJSON(in.ContentType) {
				if n > int64(len(m.Data)) {
					return "", refuse(http.StatusBadRequest, "Stream-Fork-Sub-Offset %d is beyond the append's %d bytes", n, len(m.Data))
				}
				return m.Data[:n], nil
			}
			var units []json.RawMessage
			if err := json.Unmarshal([]byte("["+m.Data+"]"), &units); err != nil {
				return "", fmt.Errorf("streams: stored JSON of %s: %w", src, err)
			}
			if n > int64(len(units)) {
				return "", refuse(http.StatusBadRequest, "Stream-Fork-Sub-Offset %d is beyond the append's %d messages", n, len(units))
			}
			parts := make([]string, n)
			for i := range parts {
				parts[i] = string(units[i])
			}
			return strings.Join(parts, ","), nil
		}
	}
}
