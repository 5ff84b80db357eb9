package dssub

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"
)

// create makes the subscription, or confirms it when it exists with the
// same configuration. It reports whether it made it.
func (m *Manager) create(ctx context.Context, id, base string, in createInput) (*sub, bool, error) {
	if in.Type == typeWebhook {
		if err := m.o.URLPolicy.Check(in.URL); err != nil {
			return nil, false, refuse(http.StatusBadRequest, "WEBHOOK_URL_REJECTED", "%v", err)
		}
	}
	hash := configHash(in)
	s, wrote, err := m.update(ctx, id, func(cur *sub) (*sub, error) {
		if cur != nil {
			if cur.Hash != hash {
				return nil, refuse(http.StatusConflict, "SUBSCRIPTION_ALREADY_EXISTS", "a subscription %q exists with another configuration", id)
			}
			return nil, nil
		}
		s := &sub{ID: id, Type: in.Type, Pattern: in.Pattern, URL: in.URL, WakeStream: in.WakeStream, LeaseTTL: in.LeaseTTL,
			Description: in.Description, Created: m.o.Now().UTC().Format(time.RFC3339Nano), Base: base, Hash: hash}
		for _, p := range in.Streams {
			if err := m.linkExplicit(ctx, s, p); err != nil {
				return nil, err
			}
		}
		return s, nil
	})
	if err != nil {
		return nil, false, err
	}
	if err := m.indexPut(ctx, id); err != nil {
		return nil, false, err
	}
	return s, wrote, nil
}

// linkExplicit links the stream at p explicitly, from its tail (what is
// in it already is not pending).
func (m *Manager) linkExplicit(ctx context.Context, s *sub, p string) error {
	if i := s.linkOf(p); i >= 0 {
		s.Links[i].Explicit = true
		return nil
	}
	if len(s.Links) >= m.o.MaxLinks {
		return refuse(http.StatusBadRequest, "INVALID_REQUEST", "a subscription follows at most %d streams", m.o.MaxLinks)
	}
	t, ok, err := m.streams.Tail(ctx, m.o.TopicPrefix+p)
	if err != nil {
		return err
	}
	if !ok {
		t = startOffset
	}
	s.addLink(p, true, t)
	return nil
}

// remove deletes the subscription (a deleted record on its log); deleting
// one that is not there is no error.
func (m *Manager) remove(ctx context.Context, id string) error {
	_, wrote, err := m.update(ctx, id, func(cur *sub) (*sub, error) {
		if cur == nil {
			return nil, nil
		}
		return &sub{ID: id, Deleted: true, Gen: cur.Gen}, nil
	})
	if err != nil || !wrote {
		return err
	}
	return m.indexWrite(ctx, "del", id)
}

// addStreams links streams explicitly.
func (m *Manager) addStreams(ctx context.Context, id string, paths []string) error {
	_, _, err := m.update(ctx, id, func(cur *sub) (*sub, error) {
		if cur == nil {
			return nil, errNotFound()
		}
		for _, p := range paths {
			if err := m.linkExplicit(ctx, cur, p); err != nil {
				return nil, err
			}
		}
		return cur, nil
	})
	return err
}

// removeStream unlinks an explicitly linked stream (a stream the pattern
// matches stays linked by it).
func (m *Manager) removeStream(ctx context.Context, id, p string) error {
	_, _, err := m.update(ctx, id, func(cur *sub) (*sub, error) {
		if cur == nil {
			return nil, errNotFound()
		}
		i := cur.linkOf(p)
		if i < 0 || !cur.Links[i].Explicit {
			return nil, nil
		}
		cur.Links[i].Explicit = false
		if !cur.Links[i].Glob {
			cur.Links = slices.Delete(cur.Links, i, i+1)
			delete(cur.Snapshot, p)
			cur.Capped = false
		}
		return cur, nil
	})
	return err
}

// ack is one acknowledgement of a callback.
type ack struct {
	Stream string `json:"stream"`
	Path   string `json:"path"`
	Offset string `json:"offset"`
}

// callbackReq is the body of a callback, an ack or a release.
type callbackReq struct {
	WakeID     *string `json:"wake_id"`
	Generation *int64  `json:"generation"`
	Acks       []ack   `json:"acks"`
	Done       bool    `json:"done"`
}

// settle applies a consumer's callback (webhook), ack (pull-wake) or
// release (release: the wake ends, nothing acknowledged) with token, and
// reports whether a next wake was made.
func (m *Manager) settle(ctx context.Context, id, typ, token string, req callbackReq, release bool) (bool, error) {
	gen, wid, ok := m.key.checkToken(id, token)
	if !ok {
		return false, refuse(http.StatusUnauthorized, "TOKEN_INVALID", "the bearer token is not a callback token of this subscription")
	}
	var trigger string
	s, _, err := m.update(ctx, id, func(cur *sub) (*sub, error) {
		trigger = ""
		switch {
		case cur == nil:
			return nil, errNotFound()
		case cur.Type != typ:
			return nil, refuse(http.StatusBadRequest, "INVALID_REQUEST", "subscription %q is a %s subscription", id, cur.Type)
		case cur.WakeID == "" || cur.Gen != gen || cur.WakeID != wid || req.Generation == nil || *req.Generation != gen ||
			req.WakeID == nil || *req.WakeID != wid:
			return nil, &apiError{status: http.StatusConflict, code: "FENCED", msg: "the wake is not the subscription's current one", gen: cur.Gen}
		case typ == typePullWake && cur.Holder == "":
			return nil, &apiError{status: http.StatusConflict, code: "FENCED", msg: "the wake is not claimed", gen: cur.Gen}
		}
		if !release {
			if err := m.applyAcks(ctx, cur, req.Acks); err != nil {
				return nil, err
			}
			cur.LeaseUntil = m.o.Now().UnixMilli() + cur.LeaseTTL
		}
		if release || req.Done {
			cur.clearWake()
			t, err := m.wakeIfPending(ctx, cur)
			if err != nil {
				return nil, err
			}
			trigger = t
		}
		return cur, nil
	})
	if err != nil {
		return false, err
	}
	if trigger != "" {
		m.afterWake(s, trigger)
	}
	return trigger != "", nil
}

// applyAcks moves the acknowledged offsets of s: each must name a
// followed stream, not go back, and not pass the stream's tail.
func (m *Manager) applyAcks(ctx context.Context, s *sub, acks []ack) error {
	bad := func(format string, args ...any) error {
		return refuse(http.StatusConflict, "INVALID_OFFSET", format, args...)
	}
	for _, a := range acks {
		p := normalize(a.Stream)
		if p == "" {
			p = normalize(a.Path)
		}
		i := s.linkOf(p)
		switch {
		case i < 0:
			return bad("the ack names %q, a stream the subscription does not follow", clip(p))
		case a.Offset == "" || a.Offset == startOffset:
			return bad("an ack's offset must be a stream offset, not %q", clip(a.Offset))
		case offsetAfter(s.Links[i].Acked, a.Offset):
			return bad("the ack's offset %q goes back before the acknowledged %q", clip(a.Offset), s.Links[i].Acked)
		}
		t, ok, err := m.streams.Tail(ctx, m.o.TopicPrefix+p)
		if err != nil {
			return err
		}
		if !ok || offsetAfter(a.Offset, t) {
			return bad("the ack's offset %q is past the stream's tail", clip(a.Offset))
		}
		s.Links[i].Acked = a.Offset
	}
	return nil
}

// claimed is a worker's claim of a pull-wake subscription's wake.
type claimed struct {
	WakeID     string       `json:"wake_id"`
	Generation int64        `json:"generation"`
	Token      string       `json:"token"`
	Streams    []streamInfo `json:"streams"`
	LeaseTTL   int64        `json:"lease_ttl_ms"`
}

// claim gives the subscription's wake (made now if data is pending) to
// worker, under a lease.
func (m *Manager) claim(ctx context.Context, id, worker string) (*claimed, error) {
	s, _, err := m.update(ctx, id, func(cur *sub) (*sub, error) {
		now := m.o.Now().UnixMilli()
		switch {
		case cur == nil:
			return nil, errNotFound()
		case cur.Type != typePullWake:
			return nil, refuse(http.StatusBadRequest, "INVALID_REQUEST", "subscription %q is not a pull-wake subscription", id)
		case cur.Holder != "" && now <= cur.LeaseUntil:
			return nil, &apiError{status: http.StatusConflict, code: "ALREADY_CLAIMED", msg: "the wake is claimed", holder: cur.Holder, gen: cur.Gen}
		case cur.Holder != "":
			cur.clearWake() // the holder's lease ran out
		}
		if cur.WakeID == "" {
			t, err := m.wakeIfPending(ctx, cur)
			if err != nil {
				return nil, err
			}
			if t == "" {
				return nil, refuse(http.StatusConflict, "NO_PENDING_WORK", "no stream of the subscription has data past its acknowledged offset")
			}
		}
		cur.Holder, cur.LeaseUntil = worker, now+cur.LeaseTTL
		return cur, nil
	})
	if err != nil {
		return nil, err
	}
	tails, _, err := m.tails(ctx, s)
	if err != nil {
		return nil, err
	}
	return &claimed{WakeID: s.WakeID, Generation: s.Gen, Token: m.key.token(s.ID, s.Gen, s.WakeID), Streams: infos(s, tails), LeaseTTL: s.LeaseTTL}, nil
}

// errAs returns err's refusal, if it is one.
func errAs(err error) (*apiError, bool) {
	var ae *apiError
	ok := errors.As(err, &ae)
	return ae, ok
}
