package dssub

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path"
	"slices"
	"strings"
)

// Types of subscription.
const (
	typeWebhook  = "webhook"
	typePullWake = "pull-wake"
)

// Bounds of lease_ttl_ms, and its default (the reference server's).
const (
	defaultLeaseTTL = 30_000
	minLeaseTTL     = 1_000
	maxLeaseTTL     = 600_000
)

// startOffset is the protocol's offset before a stream's first byte.
const startOffset = "-1"

// link is a stream a subscription follows, and how far it acknowledged.
type link struct {
	Path     string `json:"path"`
	Glob     bool   `json:"glob,omitempty"`
	Explicit bool   `json:"explicit,omitempty"`
	Acked    string `json:"acked"`
}

func (l link) linkType() string {
	if l.Explicit {
		return "explicit"
	}
	return "glob"
}

// sub is a subscription's state: one record of its log.
type sub struct {
	Deleted     bool   `json:"deleted,omitempty"`
	ID          string `json:"id"`
	Type        string `json:"type"`
	Pattern     string `json:"pattern,omitempty"`
	URL         string `json:"url,omitempty"`
	WakeStream  string `json:"wake_stream,omitempty"`
	LeaseTTL    int64  `json:"lease_ttl_ms"`
	Description string `json:"description,omitempty"`
	Created     string `json:"created_at"`
	// Base is the scheme and host the subscription was created through:
	// callback URLs are made on it.
	Base string `json:"base"`
	Hash string `json:"hash"` // the configuration's hash (configHash)

	Links []link `json:"links,omitempty"` // sorted by path
	// Capped: a stream the pattern matches was not linked, Links being
	// full (Options.MaxLinks).
	Capped bool `json:"capped,omitempty"`

	// The current wake: its generation (counting every wake made), id
	// ("" when none), the tails it was made at, its holder (a pull-wake
	// worker, or "node:<id>" for a webhook's delivering node) and the
	// lease's end (Unix ms; 0: none).
	Gen        int64             `json:"gen"`
	WakeID     string            `json:"wake_id,omitempty"`
	Snapshot   map[string]string `json:"snapshot,omitempty"`
	Holder     string            `json:"holder,omitempty"`
	LeaseUntil int64             `json:"lease_until,omitempty"`
	Attempts   int               `json:"attempts,omitempty"` // failed webhook deliveries of the wake
}

// clone returns a deep copy of s.
func (s *sub) clone() *sub {
	c := *s
	c.Links = slices.Clone(s.Links)
	if s.Snapshot != nil {
		c.Snapshot = make(map[string]string, len(s.Snapshot))
		for k, v := range s.Snapshot {
			c.Snapshot[k] = v
		}
	}
	return &c
}

// linkOf returns the index of the link to p, or -1.
func (s *sub) linkOf(p string) int {
	i, ok := slices.BinarySearchFunc(s.Links, p, func(l link, p string) int { return strings.Compare(l.Path, p) })
	if !ok {
		return -1
	}
	return i
}

// addLink links p (explicitly or by the pattern) at acked, or marks an
// existing link so.
func (s *sub) addLink(p string, explicit bool, acked string) {
	i, ok := slices.BinarySearchFunc(s.Links, p, func(l link, p string) int { return strings.Compare(l.Path, p) })
	if ok {
		if explicit {
			s.Links[i].Explicit = true
		} else {
			s.Links[i].Glob = true
		}
		return
	}
	s.Links = slices.Insert(s.Links, i, link{Path: p, Explicit: explicit, Glob: !explicit, Acked: acked})
}

// clearWake ends the current wake (its generation stays).
func (s *sub) clearWake() {
	s.WakeID, s.Snapshot, s.Holder, s.LeaseUntil, s.Attempts = "", nil, "", 0, 0
}

// matches reports whether the stream at p is one s follows or should
// follow: linked already, or matched by its pattern (never its own wake
// stream).
func (s *sub) matches(p string) bool {
	if p == s.WakeStream {
		return false
	}
	if s.linkOf(p) >= 0 {
		return true
	}
	return s.Pattern != "" && globMatch(s.Pattern, p)
}

// globMatch matches a stream path against a pattern: segments separated
// by "/", each matched as path.Match does ("*", "?", "[...]" within a
// segment), and "**" matching any number of segments.
func globMatch(pattern, p string) bool {
	return matchSegs(strings.Split(pattern, "/"), strings.Split(p, "/"))
}

func matchSegs(pat, segs []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(segs); i++ {
				if matchSegs(pat[1:], segs[i:]) {
					return true
				}
			}
			return false
		}
		if len(segs) == 0 {
			return false
		}
		if ok, err := path.Match(pat[0], segs[0]); err != nil || !ok {
			return false
		}
		pat, segs = pat[1:], segs[1:]
	}
	return len(segs) == 0
}

// validPattern reports whether every segment of pattern is well formed.
func validPattern(pattern string) bool {
	for _, seg := range strings.Split(pattern, "/") {
		if seg == "" {
			return false
		}
		if seg == "**" {
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return false
		}
	}
	return true
}

// createInput is a subscription's requested configuration, validated.
type createInput struct {
	Type        string   `json:"type"`
	Pattern     string   `json:"pattern,omitempty"`
	Streams     []string `json:"streams,omitempty"`
	URL         string   `json:"url,omitempty"`
	WakeStream  string   `json:"wake_stream,omitempty"`
	LeaseTTL    int64    `json:"lease_ttl_ms"`
	Description string   `json:"description,omitempty"`
}

// configHash is the hash a repeated PUT is compared on.
func configHash(in createInput) string {
	c := in
	c.Streams = slices.Clone(in.Streams)
	slices.Sort(c.Streams)
	c.Streams = slices.Compact(c.Streams)
	b, _ := json.Marshal(c)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
