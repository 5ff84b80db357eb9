package streams

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/pubsub"
)

// cursorEpoch and cursorInterval define the protocol's live cursors
// (§8.1): the number of 20-second intervals since 2024-10-09 00:00 UTC.
var cursorEpoch = time.Date(2024, 10, 9, 0, 0, 0, 0, time.UTC)

const cursorInterval = 20 * time.Second

// nextCursor returns the cursor of a live response: the current interval,
// or, when the client's cursor is not behind it, a later one (by 1 to 3600
// seconds' worth of intervals), so that cursors never repeat.
func nextCursor(now time.Time, client string) string {
	cur := int64(now.Sub(cursorEpoch) / cursorInterval)
	if c, err := strconv.ParseInt(client, 10, 64); err == nil && c >= cur {
		cur = c + 1 + rand.Int64N(3600/int64(cursorInterval/time.Second))
	}
	return strconv.FormatInt(cur, 10)
}

// start resolves a read's offset on the stream in: the offset the read
// continues after. It refuses a malformed offset, or one beyond the tail
// (400), and one the stream no longer has (410: another epoch of the log,
// or before the stream was created: a deleted stream of the same path).
func (h *Handler) start(raw string, in Info) (Offset, error) {
	kind, o, err := parseOffset(raw)
	if err != nil {
		return Offset{}, refuse(http.StatusBadRequest, "%v", err)
	}
	switch kind {
	case offsetNow:
		return in.TailOffset(), nil
	case offsetStart:
		return Start, nil
	}
	tail := in.TailOffset()
	switch {
	case o.Seg > in.Depth || o.Seg < in.Depth && in.ForkAt.Less(o):
		return Offset{}, refuse(http.StatusBadRequest, "offset %s is not in this stream", raw)
	case o.Seg == in.Depth && o.Pos.Epoch != in.Tail.Epoch, o.Seg < in.Depth && o.Seg == in.ForkAt.Seg && o.Pos.Epoch != in.ForkAt.Pos.Epoch:
		return Offset{}, refuse(http.StatusGone, "offset %s is from another epoch of the log: its data is gone; read from -1", raw)
	case tail.Less(o):
		return Offset{}, refuse(http.StatusBadRequest, "offset %s is beyond the stream's tail %s", raw, tail)
	case o.Seg == in.Depth && o.Pos.Offset+1 < in.Created.Offset:
		return Offset{}, refuse(http.StatusGone, "offset %s is older than the stream (a deleted stream of the same path)", raw)
	}
	return o, nil
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, topic string) {
	q, raw, err := parseRead(r)
	if err != nil {
		fail(w, r, err)
		return
	}
	in, err := h.Service.Stat(r.Context(), topic, true)
	if err != nil {
		fail(w, r, err)
		return
	}
	after, err := h.start(raw, in)
	if err != nil {
		fail(w, r, err)
		return
	}
	switch q.live {
	case "sse":
		h.sse(w, r, topic, in, after, q.cursor)
	case "long-poll":
		h.longPollRead(w, r, topic, in, after, q.cursor)
	default:
		if raw == "now" {
			h.tailOnly(w, in)
			return
		}
		h.catchUp(w, r, topic, in, after, "")
	}
}

// tailOnly answers a catch-up read at offset=now: no data, the tail.
func (h *Handler) tailOnly(w http.ResponseWriter, in Info) {
	hdr := w.Header()
	setMeta(hdr, in)
	hdr.Set("Stream-Up-To-Date", "true")
	hdr.Set("Cache-Control", "no-store")
	body := ""
	if isJSON(in.ContentType) {
		body = "[]"
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, body)
}

// catchUp answers with the data after the position after, up to a chunk;
// cursor, when set, is a live response's Stream-Cursor. A stream's own data
// on a broker that can hand it over without copies (pubsub.TopicStreamer)
// is written from the store (see catchUpStored).
func (h *Handler) catchUp(w http.ResponseWriter, r *http.Request, topic string, in Info, after Offset, cursor string) {
	if ts, ok := h.Service.cond.(pubsub.TopicStreamer); ok && (in.ForkFrom == "" || !after.Less(in.ForkAt)) {
		if h.catchUpStored(w, r, ts, topic, in, after, cursor, false) {
			return
		}
	}
	items, upToDate, err := h.Service.readStream(r.Context(), topic, in, after, h.chunk())
	if err != nil {
		fail(w, r, err)
		return
	}
	h.writeData(w, r, in, after, items, upToDate, cursor)
}

// writeData writes a read's data as the response body.
func (h *Handler) writeData(w http.ResponseWriter, r *http.Request, in Info, after Offset, items []item, upToDate bool, cursor string) {
	next := after
	if len(items) > 0 {
		next = items[len(items)-1].offset()
	}
	n, parts := 0, 0
	for _, it := range items {
		if it.m.Data != "" {
			n += len(it.m.Data)
			parts++
		}
	}
	json := isJSON(in.ContentType)
	if !h.writeHead(w, r, in, after, next, upToDate, cursor, n, parts) {
		return
	}
	// The stored bytes go out as they are: no copy per message.
	if json {
		_, _ = io.WriteString(w, "[")
	}
	first := true
	for _, it := range items {
		m := it.m
		if m.Data == "" {
			continue
		}
		if json && !first {
			_, _ = io.WriteString(w, ",")
		}
		first = false
		if _, err := w.Write(bytesOf(m.Data)); err != nil {
			return
		}
	}
	if json {
		_, _ = io.WriteString(w, "]")
	}
}

// writeHead writes the headers of a read's response whose data runs from
// after to next (the offset of its last message): size bytes in parts
// messages that carry data. It reports whether the body is to be written
// (not for a 304 or a HEAD).
func (h *Handler) writeHead(w http.ResponseWriter, r *http.Request, in Info, after, next Offset, upToDate bool, cursor string, size, parts int) bool {
	if tail := in.TailOffset(); upToDate && next.Less(tail) {
		next = tail
	}
	hdr := w.Header()
	hdr.Set("Content-Type", in.ContentType)
	hdr.Set("Stream-Next-Offset", next.String())
	closed := in.Closed && upToDate
	etag := `"` + Offset{Seg: in.Depth, Pos: in.Created}.String() + ":" + after.String() + ":" + next.String()
	if upToDate {
		hdr.Set("Stream-Up-To-Date", "true")
	}
	if closed {
		hdr.Set("Stream-Closed", "true")
		etag += ":c"
	}
	etag += `"`
	hdr.Set("ETag", etag)
	if cursor != "" {
		hdr.Set("Stream-Cursor", cursor)
	}
	switch {
	case upToDate && !closed:
		// More may come at this URL's offset: revalidate (ETag).
		hdr.Set("Cache-Control", "no-cache")
	case h.Private:
		hdr.Set("Cache-Control", "private, max-age=60, stale-while-revalidate=300")
	default:
		hdr.Set("Cache-Control", "public, max-age=60, stale-while-revalidate=300")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatch(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return false
	}
	if isJSON(in.ContentType) {
		size += 2 + max(parts-1, 0)
	}
	hdr.Set("Content-Length", strconv.Itoa(size))
	w.WriteHeader(http.StatusOK)
	return r.Method != http.MethodHead
}

// bytesOf returns s's bytes without a copy: a large write of them goes
// from the stored message to the socket (net/http's buffers let a write
// larger than themselves through), which is what makes catch-up reads
// fast. The bytes must not be modified; writers only read them.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// etagMatch reports whether an If-None-Match header names etag.
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || t == etag || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// hasData reports whether items carry bytes for the reader.
func hasData(items []item) bool {
	for _, it := range items {
		if it.m.Data != "" {
			return true
		}
	}
	return false
}

// longPollRead answers at once when there is data after the position
// after (or the stream is closed there), else waits for an append up to
// the long-poll timeout (204).
func (h *Handler) longPollRead(w http.ResponseWriter, r *http.Request, topic string, in Info, after Offset, clientCursor string) {
	// Data already there is answered as a catch-up read answers it (from
	// the store, when it can hand its data over).
	if ts, ok := h.Service.cond.(pubsub.TopicStreamer); ok && (in.ForkFrom == "" || !after.Less(in.ForkAt)) {
		if h.catchUpStored(w, r, ts, topic, in, after, nextCursor(time.Now(), clientCursor), true) {
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.longPoll())
	defer cancel()
	var sub *hub.Subscription
	defer func() {
		if sub != nil {
			sub.Close()
		}
	}()
	for {
		items, upToDate, err := h.Service.readStream(r.Context(), topic, in, after, h.chunk())
		if err != nil {
			fail(w, r, err)
			return
		}
		if hasData(items) {
			h.writeData(w, r, in, after, items, upToDate, nextCursor(time.Now(), clientCursor))
			return
		}
		if len(items) > 0 {
			after = items[len(items)-1].offset()
		}
		if in.Closed {
			h.noData(w, in, after, clientCursor)
			return
		}
		if sub == nil {
			sub, err = h.Service.hub.Subscribe(ctx, hub.Request{Topics: []string{topic}, LastEventID: ownStart(in, after).Pos.String(), Internal: true})
			switch {
			case errors.Is(err, hub.ErrFinished):
				sub = nil
			case err != nil && ctx.Err() != nil:
				h.noData(w, in, after, clientCursor)
				return
			case err != nil:
				fail(w, r, err)
				return
			}
		}
		if sub != nil {
			select {
			case <-sub.Ready():
				if _, open := sub.Pop(nil); !open {
					sub.Close()
					sub = nil
				}
			case <-ctx.Done():
				if r.Context().Err() == nil {
					h.noData(w, in, after, clientCursor)
				}
				return
			}
		}
		// Something happened on the stream: look again.
		in, err = h.Service.Stat(r.Context(), topic, true)
		if err != nil {
			fail(w, r, err)
			return
		}
	}
}

// noData answers a long-poll that found nothing new: 204 with the tail.
func (h *Handler) noData(w http.ResponseWriter, in Info, after Offset, clientCursor string) {
	hdr := w.Header()
	next := after
	if tail := in.TailOffset(); next.Less(tail) {
		next = tail
	}
	hdr.Set("Stream-Next-Offset", next.String())
	hdr.Set("Stream-Up-To-Date", "true")
	hdr.Set("Stream-Cursor", nextCursor(time.Now(), clientCursor))
	hdr.Set("Cache-Control", "no-store")
	if in.Closed {
		hdr.Set("Stream-Closed", "true")
	}
	w.WriteHeader(http.StatusNoContent)
}
