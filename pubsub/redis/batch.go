package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/internal/codec"
)

// PublishBatch appends msgs to the log in order, with the effect of
// Publish called for each, in one script call: the messages get
// consecutive offsets (a message whose ID was published within
// pubsub.DedupeWindow, before or earlier in the batch, gets the first
// one's position and is not stored again). It stops at the first message
// that goes to a finished topic and returns how many were published, with
// ErrTopicFinished; the messages before it are stored. It implements
// pubsub.BatchPublisher.
//
// Each topic gets one RPUSH of its messages per batch, and the batch is
// announced to every node's listener in one live-stream entry.
func (b *Broker) PublishBatch(ctx context.Context, msgs []*pubsub.Message) (int, error) {
	return b.publishBatch(ctx, msgs, nil)
}

// publishBatch runs publish.lua for msgs. With cond (PublishIf: msgs is one
// message of one topic), the script publishes only if the tail of that
// topic is *cond, and the plan names no ID (a conditional append is not
// deduplicated; the message keeps its ID).
func (b *Broker) publishBatch(ctx context.Context, msgs []*pubsub.Message, cond *pubsub.Position) (int, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	valid := len(msgs)
	for i, m := range msgs {
		if len(m.Topics) == 0 {
			valid = i
			break
		}
	}
	if valid == 0 {
		return 0, errors.New("redis: publish: no topic")
	}
	plan := encodePlan(msgs[:valid], cond == nil)
	r := b.o.Retention
	for range maxEpochRetries {
		epoch := b.Epoch()
		k := b.keys(epoch)
		condArg := ""
		if cond != nil {
			if cond.Offset != 0 && cond.Epoch != epoch {
				if err := b.refreshEpoch(ctx); err != nil {
					return 0, err
				}
				if epoch = b.Epoch(); cond.Epoch != epoch {
					return 0, fmt.Errorf("%w: %w: tail %v, log %s", pubsub.ErrConflict, pubsub.ErrEpochChanged, *cond, epoch)
				}
				k = b.keys(epoch)
			}
			condArg = strconv.FormatUint(cond.Offset, 10)
		}
		keys := []string{b.meta, b.epochs, k.live, k.wm, k.topics, k.ret, k.fin, k.pend}
		res, err := publishScript.Run(ctx, b.rdb, keys, epoch, pubsub.NewEpoch(), r.MaxEvents, r.MaxBytes, b.o.LiveWindow,
			k.topicPrefix, k.ids, int(pubsub.DedupeWindow.Seconds()), plan, condArg).Slice()
		if err != nil {
			return 0, b.fail(ctx, "publish", err)
		}
		b.reachable()
		if len(res) != 4 {
			return 0, fmt.Errorf("redis: publish: unexpected reply %v", res)
		}
		status, n, detail := str(res[0]), int(toUint(res[1])), str(res[2])
		if status == "epoch" {
			b.setEpoch(detail)
			continue
		}
		pos, _ := res[3].([]any)
		if n > valid || len(pos) != 2*n {
			return 0, fmt.Errorf("redis: publish: unexpected reply %v", res)
		}
		for i, m := range msgs[:n] {
			m.Pos = pubsub.Position{Epoch: epoch, Offset: toUint(pos[2*i])}
			m.Time = time.UnixMilli(int64(toUint(pos[2*i+1])))
		}
		switch status {
		case "ok":
			if n < len(msgs) {
				return n, errors.New("redis: publish: no topic")
			}
			return n, nil
		case "finished":
			return n, fmt.Errorf("%w: %q", pubsub.ErrTopicFinished, detail)
		case "conflict":
			if cond == nil || n != 0 {
				return n, fmt.Errorf("redis: publish: unexpected reply %v", res)
			}
			return 0, fmt.Errorf("%w: the tail of %q is at offset %s, not %d", pubsub.ErrConflict, msgs[0].Topics[0], detail, cond.Offset)
		default:
			return n, fmt.Errorf("redis: publish: unexpected reply %v", res)
		}
	}
	return 0, fmt.Errorf("%w: redis: publish: the epoch keeps changing", pubsub.ErrUnavailable)
}

// encodePlan encodes msgs for publish.lua: a MessagePack array holding,
// for each message, the array {flags (1 retain, 2 final), size, ID,
// encoded message, topic...}, its topics without duplicates. Without ids
// every message's ID in the plan is empty (not deduplicated); the encoded
// message keeps it.
func encodePlan(msgs []*pubsub.Message, ids bool) string {
	n := 5
	for _, m := range msgs {
		n += 32 + len(m.ID) + len(m.Data) + len(m.Type) + 16*len(m.Topics)
		for _, t := range m.Topics {
			n += len(t)
		}
	}
	p := make([]byte, 0, n)
	p = mpArray(p, len(msgs))
	var blob []byte
	for _, m := range msgs {
		topics := dedupe(m.Topics)
		p = mpArray(p, 4+len(topics))
		p = mpUint(p, uint64(flag(m.Retain)|2*flag(m.Final)))
		p = mpUint(p, uint64(m.Size()))
		if ids {
			p = mpString(p, m.ID)
		} else {
			p = mpString(p, "")
		}
		blob = codec.Encode(blob[:0], m)
		p = mpString(p, string(blob))
		for _, t := range topics {
			p = mpString(p, t)
		}
	}
	return string(p)
}

// MessagePack, the few forms encodePlan needs (Redis's Lua reads them with
// cmsgpack).

func mpArray(p []byte, n int) []byte {
	switch {
	case n < 16:
		return append(p, 0x90|byte(n))
	case n < 1<<16:
		return append(p, 0xdc, byte(n>>8), byte(n))
	}
	return append(p, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func mpUint(p []byte, v uint64) []byte {
	switch {
	case v < 128:
		return append(p, byte(v))
	case v < 1<<16:
		return append(p, 0xcd, byte(v>>8), byte(v))
	case v < 1<<32:
		return append(p, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(p, 0xcf, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func mpString(p []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		p = append(p, 0xa0|byte(n))
	case n < 1<<8:
		p = append(p, 0xd9, byte(n))
	case n < 1<<16:
		p = append(p, 0xda, byte(n>>8), byte(n))
	default:
		p = append(p, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(p, s...)
}

// decodePlan returns the encoded messages of a plan that encodePlan wrote
// (the live stream carries it as publish.lua received it).
func decodePlan(p string) ([]string, error) {
	r := mpReader{s: p}
	n := r.array()
	if r.err != nil || n > len(p) {
		return nil, fmt.Errorf("redis: plan: %w", cmp.Or(r.err, errPlan))
	}
	out := make([]string, 0, n)
	for range n {
		fields := r.array()
		if fields < 5 || fields > len(r.s) {
			return nil, fmt.Errorf("redis: plan: %w", cmp.Or(r.err, errPlan))
		}
		r.uint()
		r.uint()
		r.str()
		blob := r.str()
		for range fields - 4 {
			r.str()
		}
		if r.err != nil {
			return nil, fmt.Errorf("redis: plan: %w", r.err)
		}
		out = append(out, blob)
	}
	if r.s != "" {
		return nil, fmt.Errorf("redis: plan: %w", errPlan)
	}
	return out, nil
}

var errPlan = errors.New("malformed")

// mpReader reads the MessagePack forms encodePlan writes; the first
// malformed one sets err, after which every read returns zero.
type mpReader struct {
	s   string
	err error
}

func (r *mpReader) take(n int) string {
	if r.err != nil || n < 0 || n > len(r.s) {
		r.err = cmp.Or(r.err, errPlan)
		return ""
	}
	v := r.s[:n]
	r.s = r.s[n:]
	return v
}

// be reads an n-byte big-endian unsigned integer.
func (r *mpReader) be(n int) uint64 {
	var v uint64
	for _, c := range []byte(r.take(n)) {
		v = v<<8 | uint64(c)
	}
	return v
}

func (r *mpReader) array() int {
	b := r.be(1)
	switch {
	case r.err != nil:
		return 0
	case b&0xf0 == 0x90:
		return int(b & 0x0f)
	case b == 0xdc:
		return int(r.be(2))
	case b == 0xdd:
		return int(r.be(4))
	}
	r.err = errPlan
	return 0
}

func (r *mpReader) uint() uint64 {
	b := r.be(1)
	switch {
	case r.err != nil:
		return 0
	case b < 0x80:
		return b
	case b == 0xcc:
		return r.be(1)
	case b == 0xcd:
		return r.be(2)
	case b == 0xce:
		return r.be(4)
	case b == 0xcf:
		return r.be(8)
	}
	r.err = errPlan
	return 0
}

func (r *mpReader) str() string {
	b := r.be(1)
	switch {
	case r.err != nil:
		return ""
	case b&0xe0 == 0xa0:
		return r.take(int(b & 0x1f))
	case b == 0xd9:
		return r.take(int(r.be(1)))
	case b == 0xda:
		return r.take(int(r.be(2)))
	case b == 0xdb:
		return r.take(int(r.be(4)))
	}
	r.err = errPlan
	return ""
}
