package redis

import (
	"context"
	"encoding/binary"
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
	tail, live := encodeBatch(msgs[:valid], cond == nil)
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
		args := append([]any{epoch, pubsub.NewEpoch(), r.MaxEvents, r.MaxBytes, b.o.LiveWindow,
			k.topicPrefix, k.ids, int(pubsub.DedupeWindow.Seconds()), live, condArg}, tail...)
		res, err := publishScript.Run(ctx, b.rdb, keys, args...).Slice()
		if err != nil {
			return 0, b.fail(ctx, "publish", err)
		}
		b.reachable()
		if len(res) != 6 {
			return 0, fmt.Errorf("redis: publish: unexpected reply %v", res)
		}
		status, n, detail := str(res[0]), int(toUint(res[1])), str(res[2])
		if status == "epoch" {
			b.setEpoch(detail)
			continue
		}
		if n > valid || !b.positions(epoch, msgs[:n], toUint(res[3]), toUint(res[4]), res[5]) {
			return 0, fmt.Errorf("redis: publish: unexpected reply %v", res)
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

// positions sets the position and time of the published msgs from
// publish.lua's reply: the stored ones have offsets first, first+1, ...
// and time ms; hits ({message number, offset, ms, ...}, numbers from 1,
// ascending) are those deduplicated. It reports whether the reply fits
// msgs.
func (b *Broker) positions(epoch string, msgs []*pubsub.Message, first, ms uint64, hits any) bool {
	h, _ := hits.([]any)
	if len(h)%3 != 0 {
		return false
	}
	next := first
	for i, m := range msgs {
		if len(h) > 0 && toUint(h[0]) == uint64(i+1) {
			m.Pos = pubsub.Position{Epoch: epoch, Offset: toUint(h[1])}
			m.Time = time.UnixMilli(int64(toUint(h[2])))
			h = h[3:]
			continue
		}
		m.Pos = pubsub.Position{Epoch: epoch, Offset: next}
		m.Time = time.UnixMilli(int64(ms))
		next++
	}
	return len(h) == 0
}

// encodeBatch returns publish.lua's arguments for msgs from its 11th on
// (the batch's topics, then each message's topic number and encoded
// message, or minus its head, its ID, its encoded message and its topic
// numbers) and its 9th (the encoded messages for the live stream, as
// encodeBlobs frames them). Without ids every message's ID argument is
// empty (not deduplicated); the encoded message keeps it.
func encodeBatch(msgs []*pubsub.Message, ids bool) (args []any, live string) {
	var names []string
	index := make(map[string]int)
	blobs := make([]string, len(msgs))
	var blob []byte
	per := make([][]int, len(msgs))
	for i, m := range msgs {
		for _, t := range dedupe(m.Topics) {
			n, ok := index[t]
			if !ok {
				names = append(names, t)
				n = len(names)
				index[t] = n
			}
			per[i] = append(per[i], n)
		}
		blob = codec.Encode(blob[:0], m)
		blobs[i] = string(blob)
	}
	args = make([]any, 0, 1+len(names)+4*len(msgs))
	args = append(args, len(names))
	for _, t := range names {
		args = append(args, t)
	}
	for i, m := range msgs {
		id := ""
		if ids {
			id = m.ID
		}
		if id == "" && !m.Retain && !m.Final && len(per[i]) == 1 {
			args = append(args, per[i][0], blobs[i])
			continue
		}
		args = append(args, -(flag(m.Retain) | 2*flag(m.Final) | 4*len(per[i])), id, blobs[i])
		for _, n := range per[i] {
			args = append(args, n)
		}
	}
	return args, encodeBlobs(blobs)
}

// encodeBlobs frames encoded messages for the live stream: each as its
// length (uvarint) and its bytes.
func encodeBlobs(blobs []string) string {
	n := 0
	for _, b := range blobs {
		n += binary.MaxVarintLen64 + len(b)
	}
	p := make([]byte, 0, n)
	for _, b := range blobs {
		p = binary.AppendUvarint(p, uint64(len(b)))
		p = append(p, b...)
	}
	return string(p)
}

// decodeBlobs returns the encoded messages that encodeBlobs framed, or an
// error (a live-stream entry it did not write).
func decodeBlobs(p string) ([]string, error) {
	var out []string
	for len(p) > 0 {
		n, k := binary.Uvarint([]byte(p[:min(len(p), binary.MaxVarintLen64)]))
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, errors.New("redis: live entry: malformed batch")
		}
		out = append(out, p[k:k+int(n)])
		p = p[k+int(n):]
	}
	return out, nil
}
