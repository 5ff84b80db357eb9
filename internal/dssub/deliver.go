package dssub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"
)

// maxBackoff bounds the wait between two attempts to deliver a webhook.
const maxBackoff = time.Minute

// streamInfo is a followed stream as a wake and a claim describe it.
type streamInfo struct {
	Path       string `json:"path"`
	LinkType   string `json:"link_type"`
	AckedOff   string `json:"acked_offset"`
	TailOffset string `json:"tail_offset"`
	HasPending bool   `json:"has_pending"`
}

// infos describes s's streams at the tails given.
func infos(s *sub, tails map[string]string) []streamInfo {
	out := make([]streamInfo, 0, len(s.Links))
	for _, l := range s.Links {
		t, ok := tails[l.Path]
		if !ok {
			t = l.Acked
		}
		out = append(out, streamInfo{Path: l.Path, LinkType: l.linkType(), AckedOff: l.Acked, TailOffset: t, HasPending: offsetAfter(t, l.Acked)})
	}
	return out
}

// actionURL is the URL of one of the subscription's actions.
func (m *Manager) actionURL(s *sub, action string) string {
	return s.Base + m.o.Prefix + "__ds/subscriptions/" + s.ID + "/" + action
}

// deliver POSTs the webhook of the wake (gen, wakeID) of the subscription
// id while this node holds it, and retries with backoff (extending the
// lease) while it fails. A response {"done": true} acknowledges the wake's
// snapshot and ends the wake; the next wake, if data is pending, is
// delivered in turn.
func (m *Manager) deliver(ctx context.Context, id string, gen int64, wakeID string) {
	for attempt := 0; ctx.Err() == nil; {
		s, err := m.load(ctx, id)
		if err != nil {
			m.warn(ctx, "dssub: deliver", "subscription", id, "err", err)
			return // the lease runs out, and a sweep delivers again
		}
		if s == nil || s.Gen != gen || s.WakeID != wakeID || s.Holder != "node:"+m.node {
			return // fenced: another wake, or another holder
		}
		body, _ := json.Marshal(map[string]any{
			"subscription_id": s.ID,
			"wake_id":         s.WakeID,
			"generation":      s.Gen,
			"streams":         infos(s, s.Snapshot),
			"callback_url":    m.actionURL(s, "callback"),
			"callback_token":  m.key.token(s.ID, s.Gen, s.WakeID),
		})
		done, err := m.post(ctx, s.URL, body)
		if err == nil {
			if !done {
				return // the consumer holds the wake until its callback or the lease's end
			}
			var trigger string
			s, wrote, err := m.update(ctx, id, func(cur *sub) (*sub, error) {
				trigger = ""
				if cur == nil || cur.Gen != gen || cur.WakeID != wakeID {
					return nil, nil
				}
				for i, l := range cur.Links {
					if t, ok := cur.Snapshot[l.Path]; ok && offsetAfter(t, l.Acked) {
						cur.Links[i].Acked = t
					}
				}
				cur.clearWake()
				t, err := m.wakeIfPending(ctx, cur)
				trigger = t
				return cur, err
			})
			if err != nil {
				m.warn(ctx, "dssub: deliver", "subscription", id, "err", err)
				return
			}
			if !wrote || trigger == "" {
				return
			}
			gen, wakeID, attempt = s.Gen, s.WakeID, 0
			continue
		}
		attempt++
		wait := backoff(attempt)
		m.log.Info("dssub: webhook delivery failed; retrying", "subscription", id, "attempt", attempt, "in", wait, "err", err)
		_, wrote, uerr := m.update(ctx, id, func(cur *sub) (*sub, error) {
			if cur == nil || cur.Gen != gen || cur.WakeID != wakeID || cur.Holder != "node:"+m.node {
				return nil, nil
			}
			cur.Attempts = attempt
			cur.LeaseUntil = m.o.Now().Add(wait).UnixMilli() + cur.LeaseTTL
			return cur, nil
		})
		if uerr != nil || !wrote {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// backoff is the wait before attempt n+1: 1 s doubling to a minute, ±20 %.
func backoff(n int) time.Duration {
	d := time.Second << min(n-1, 6)
	d = min(d, maxBackoff)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// post sends one signed webhook request (at most MaxDeliveries at once on
// this node) and reports whether the consumer answered {"done": true}.
func (m *Manager) post(ctx context.Context, target string, body []byte) (bool, error) {
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-m.sem }()
	ctx, cancel := context.WithTimeout(ctx, m.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "herald-durable-streams-webhook")
	req.Header.Set("Webhook-Signature", m.key.signature(m.o.Now(), body))
	resp, err := m.client.Do(req)
	if err != nil {
		// Not the URL: it may carry a secret (a token in its query).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return false, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, &statusError{resp.StatusCode}
	}
	var ans struct {
		Done bool `json:"done"`
	}
	_ = json.Unmarshal(b, &ans)
	return ans.Done, nil
}

type statusError struct{ status int }

func (e *statusError) Error() string { return "webhook answered " + http.StatusText(e.status) }
