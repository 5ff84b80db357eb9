package shard

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/heraldpush/herald/pubsub"
)

// Entry is a connection's position in one shard.
type Entry struct {
	Shard int
	Pos   pubsub.Position
}

// ErrInvalidID is returned (wrapped) by ParseID.
var ErrInvalidID = errors.New("shard: invalid id")

// maxShardsInID bounds the entries of one id.
const maxShardsInID = 1024

// Fingerprint returns the 8 base-36 digits that stand for the epochs of
// entries (in order) in a vector id.
func Fingerprint(entries []Entry) string {
	const offset64, prime64 = 14695981039346656037, 1099511628211
	h := uint64(offset64)
	mix := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= prime64
		}
		h ^= 0xff
		h *= prime64
	}
	for _, e := range entries {
		mix(strconv.Itoa(e.Shard))
		mix(e.Pos.Epoch)
	}
	var b [8]byte
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	for i := range b {
		b[i] = digits[h%36]
		h /= 36
	}
	return string(b[:])
}

// FormatID returns the event id of a connection at entries (sorted by
// shard): "<epoch>-<offset>" for one entry, a vector otherwise.
func FormatID(entries []Entry) string {
	if len(entries) == 1 {
		return entries[0].Pos.String()
	}
	shards := make([]int, len(entries))
	offs := make([]uint64, len(entries))
	for i, e := range entries {
		shards[i], offs[i] = e.Shard, e.Pos.Offset
	}
	return string(AppendVector(nil, Fingerprint(entries), shards, offs))
}

// AppendVector appends a vector id to dst: fp (from Fingerprint), then each
// shard and offset.
func AppendVector(dst []byte, fp string, shards []int, offs []uint64) []byte {
	dst = append(dst, fp...)
	for i, k := range shards {
		if i == 0 {
			dst = append(dst, '~')
		} else {
			dst = append(dst, '.')
		}
		dst = strconv.AppendUint(dst, uint64(k), 36)
		dst = append(dst, '-')
		dst = strconv.AppendUint(dst, offs[i], 36)
	}
	return dst
}

// ParseID parses an event id. epochs are the shards' current epochs, shard
// k at index k. For the one-log form "<epoch>-<offset>" the entry's Shard
// is the shard whose current epoch it names, or -1 when none does. For a
// vector, the entries' Epoch is their shard's current epoch when the
// fingerprint matches, and empty when it does not (the positions belong to
// epochs since replaced) or names a shard that does not exist.
func ParseID(id string, epochs []string) ([]Entry, error) {
	fp, rest, vector := strings.Cut(id, "~")
	if !vector {
		pos, err := pubsub.ParsePosition(id)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidID, err)
		}
		k := -1
		for i, e := range epochs {
			if e == pos.Epoch {
				k = i
				break
			}
		}
		return []Entry{{Shard: k, Pos: pos}}, nil
	}
	if len(fp) != 8 || rest == "" {
		return nil, fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	parts := strings.Split(rest, ".")
	if len(parts) > maxShardsInID {
		return nil, fmt.Errorf("%w: more than %d shards", ErrInvalidID, maxShardsInID)
	}
	out := make([]Entry, len(parts))
	known := true
	for i, p := range parts {
		ks, os, ok := strings.Cut(p, "-")
		k, err1 := strconv.ParseUint(ks, 36, 31)
		off, err2 := strconv.ParseUint(os, 36, 64)
		if !ok || err1 != nil || err2 != nil || ks[0] == '+' || os[0] == '+' || i > 0 && int(k) <= out[i-1].Shard {
			return nil, fmt.Errorf("%w: %q", ErrInvalidID, id)
		}
		out[i] = Entry{Shard: int(k), Pos: pubsub.Position{Offset: off}}
		if int(k) < len(epochs) {
			out[i].Pos.Epoch = epochs[k]
		} else {
			known = false
		}
	}
	if !known || Fingerprint(out) != fp {
		for i := range out {
			out[i].Pos.Epoch = ""
		}
	}
	return out, nil
}
