package shard

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/heraldpush/herald/pubsub"
)

// markTopic is the reserved topic whose retained message records, on each
// shard, the shard counts the shard was part of. Its control character
// keeps it out of reach of clients (the hub refuses such topics).
const markTopic = "\x00herald/shards"

// mark says that from position from (exclusive) on, the shard belonged to
// a deployment of count shards, in generation gen (one per change of the
// count, counted on shard 0).
type mark struct {
	gen, count int
	from       uint64
}

type marks []mark

func (ms marks) String() string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%d %d %d\n", m.gen, m.count, m.from)
	}
	return b.String()
}

func parseMarks(s string) marks {
	var out marks
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		g, err1 := strconv.Atoi(f[0])
		c, err2 := strconv.Atoi(f[1])
		from, err3 := strconv.ParseUint(f[2], 10, 64)
		if err1 == nil && err2 == nil && err3 == nil && g > 0 && c > 0 {
			out = append(out, mark{gen: g, count: c, from: from})
		}
	}
	return out
}

// readMarks returns a shard's marks and head.
func readMarks(ctx context.Context, b pubsub.Broker) (marks, pubsub.Position, error) {
	snap, err := b.Read(ctx, pubsub.Query{Topics: []string{markTopic}})
	if err != nil {
		return nil, pubsub.Position{}, err
	}
	var ms marks
	if len(snap.Retained) > 0 {
		ms = parseMarks(snap.Retained[len(snap.Retained)-1].Data)
	}
	return ms, snap.Head, nil
}

// record reads each shard's marks and, when the number of shards changed
// and reshard allows it, appends the new generation to every shard's (a
// retained message on markTopic); without reshard it refuses the change
// with ErrShardCount. A deployment that always had one shard records
// nothing.
func record(ctx context.Context, shards []pubsub.Broker, reshard bool) ([]marks, error) {
	n := len(shards)
	out := make([]marks, n)
	for k, s := range shards {
		ms, head, err := readMarks(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("shard %d: reading its shard counts: %w", k, err)
		}
		if k == 0 && len(ms) == 0 && n > 1 && head.Offset > 0 {
			// A log from a deployment with one shard (before marks).
			ms = marks{{gen: 1, count: 1}}
		}
		out[k] = ms
	}
	gen := 1
	if last := out[0]; len(last) > 0 {
		gen = last[len(last)-1].gen
		if was := last[len(last)-1].count; was != n {
			if !reshard {
				return nil, countError(was, n)
			}
			gen++
		}
	} else if n == 1 {
		return out, nil
	}
	for k, s := range shards {
		ms := out[k]
		if len(ms) > 0 && ms[len(ms)-1].gen == gen {
			continue // recorded (by another node)
		}
		_, head, err := readMarks(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("shard %d: %w", k, err)
		}
		ms = append(ms, mark{gen: gen, count: n, from: head.Offset})
		if _, err := s.Publish(ctx, &pubsub.Message{Topics: []string{markTopic}, Data: ms.String(), Retain: true}); err != nil {
			return nil, fmt.Errorf("shard %d: recording the shard count: %w", k, err)
		}
		out[k] = ms
	}
	return out, nil
}

func countError(was, n int) error {
	return fmt.Errorf("%w: its shards record %d shard(s), this node has %d: start every node with the same --broker-shards (%d), or, to change the number of shards, stop every node and start them with --broker-shards %d --broker-reshard (docs/scaling.md)",
		ErrShardCount, was, n, was, n)
}

// Check is New's guard for a node that opens one log without a Broker of
// shards (--broker-shards 1): it refuses, with ErrShardCount, a log that
// is shard 0 of a deployment whose shards recorded another count, unless
// opts.Reshard is set, in which case it records that the deployment now
// has one shard.
func Check(ctx context.Context, b pubsub.Broker, opts *Options) error {
	ms, _, err := readMarks(ctx, b)
	if err != nil {
		return fmt.Errorf("shard 0: reading its shard counts: %w", err)
	}
	if len(ms) == 0 || ms[len(ms)-1].count == 1 {
		return nil
	}
	if opts == nil || !opts.Reshard {
		return countError(ms[len(ms)-1].count, 1)
	}
	_, err = record(ctx, []pubsub.Broker{b}, true)
	return err
}

// Moved reports whether messages of topic after pos (a position on its
// shard) may be on another log: since pos, the shard count changed so
// that the topic lived on another shard for a while, or its shard was
// left out of the deployment for a while. It is false for a position of
// another epoch (the epoch check covers those).
func (b *Broker) Moved(topic string, pos pubsub.Position) bool {
	k := b.ShardOf(topic)
	if pos.Epoch != b.shards[k].Epoch() {
		return false
	}
	ms := b.marks[k]
	// The mark in effect when pos was written (a mark's message itself
	// comes right after its from), and every later one.
	i := 0
	for i+1 < len(ms) && ms[i+1].from < pos.Offset {
		i++
	}
	if len(ms) > 0 && ms[0].from > pos.Offset {
		return true // before the shard's first mark: it was not this log's
	}
	for j := i; j < len(ms); j++ {
		if Of(topic, ms[j].count) != k || j > i && ms[j].gen != ms[j-1].gen+1 {
			return true
		}
	}
	return false
}
