package streams

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/heraldpush/herald/internal/access"
)

// maxSafeInt is the largest producer epoch or sequence: 2^53-1, for
// JavaScript clients.
const maxSafeInt = 1<<53 - 1

// parseDecimal parses a non-negative decimal integer written without sign,
// leading zeros, point or exponent.
func parseDecimal(s string, max int64) (int64, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > max {
		return 0, false
	}
	return n, true
}

// parseCreate reads a PUT's headers and body.
func (h *Handler) parseCreate(w http.ResponseWriter, r *http.Request) (createReq, error) {
	req := createReq{ttl: -1, contentType: r.Header.Get("Content-Type")}
	if req.contentType == "" {
		req.contentType = "application/octet-stream"
	}
	if mediaType(req.contentType) == "" {
		return req, access.BadRequest("malformed Content-Type %q", clipStr(req.contentType))
	}
	ttl, hasTTL := r.Header["Stream-Ttl"]
	exp, hasExp := r.Header["Stream-Expires-At"]
	if hasTTL && hasExp {
		return req, access.BadRequest("give Stream-TTL or Stream-Expires-At, not both")
	}
	if hasTTL {
		n, ok := parseDecimal(ttl[0], 1<<40)
		if !ok || len(ttl) > 1 {
			return req, access.BadRequest("Stream-TTL must be a non-negative integer of seconds without sign or leading zeros (got %q)", clipStr(ttl[0]))
		}
		req.ttl = n
	}
	if hasExp {
		t, err := time.Parse(time.RFC3339Nano, exp[0])
		if err != nil || len(exp) > 1 {
			return req, access.BadRequest("Stream-Expires-At must be an RFC 3339 time (got %q)", clipStr(exp[0]))
		}
		req.expiresRaw, req.expiresAt = exp[0], t
	}
	closed, err := parseClosed(r)
	if err != nil {
		return req, err
	}
	req.closed = closed
	body, err := access.ReadBody(w, r, h.MaxBody)
	if err != nil {
		return req, err
	}
	if isJSON(req.contentType) {
		units, err := flattenJSON(body, true)
		if err != nil {
			return req, err
		}
		req.body = units
	} else {
		req.body = string(body)
	}
	return req, nil
}

// parseClosed reads Stream-Closed: "true" closes; absent or "false" not.
func parseClosed(r *http.Request) (bool, error) {
	switch v := strings.ToLower(r.Header.Get("Stream-Closed")); v {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, access.BadRequest("Stream-Closed must be true or false (got %q)", clipStr(v))
	}
}

// parseAppend reads a POST's headers and body.
func (h *Handler) parseAppend(w http.ResponseWriter, r *http.Request) (appendReq, error) {
	var req appendReq
	id, hasID := r.Header["Producer-Id"]
	ep, hasEp := r.Header["Producer-Epoch"]
	sq, hasSq := r.Header["Producer-Seq"]
	switch {
	case hasID && hasEp && hasSq:
		if id[0] == "" {
			return req, access.BadRequest("Producer-Id must not be empty")
		}
		epoch, ok1 := parseDecimal(ep[0], maxSafeInt)
		seq, ok2 := parseDecimal(sq[0], maxSafeInt)
		if !ok1 || !ok2 {
			return req, access.BadRequest("Producer-Epoch and Producer-Seq must be non-negative integers up to 2^53-1 (got %q, %q)", clipStr(ep[0]), clipStr(sq[0]))
		}
		req.producer, req.epoch, req.seq = id[0], epoch, seq
	case hasID || hasEp || hasSq:
		return req, access.BadRequest("Producer-Id, Producer-Epoch and Producer-Seq go together: give all three or none")
	}
	if v, ok := r.Header["Stream-Seq"]; ok {
		req.streamSeq, req.hasSeq = v[0], true
	}
	closed, err := parseClosed(r)
	if err != nil {
		return req, err
	}
	req.close = closed
	body, err := access.ReadBody(w, r, h.MaxBody)
	if err != nil {
		return req, err
	}
	if len(body) == 0 {
		if !closed {
			return req, access.BadRequest("empty append: a POST needs a body (or Stream-Closed: true to close the stream)")
		}
		return req, nil
	}
	req.contentType = r.Header.Get("Content-Type")
	if req.contentType == "" {
		return req, access.BadRequest("an append needs a Content-Type (the stream's)")
	}
	if mediaType(req.contentType) == "" {
		return req, access.BadRequest("malformed Content-Type %q", clipStr(req.contentType))
	}
	if isJSON(req.contentType) {
		units, err := flattenJSON(body, false)
		if err != nil {
			return req, err
		}
		req.body = units
	} else {
		req.body = string(body)
	}
	return req, nil
}

// flattenJSON validates a JSON-mode body and returns its messages, compact
// and joined by commas: the elements of a top-level array (one level
// flattened), or the one value. An empty array is refused unless
// emptyOK (a create).
func flattenJSON(body []byte, emptyOK bool) (string, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		if emptyOK {
			return "", nil
		}
		return "", access.BadRequest("empty JSON body")
	}
	if !json.Valid(trimmed) {
		return "", access.BadRequest("the body is not valid JSON")
	}
	var out bytes.Buffer
	if trimmed[0] != '[' {
		if err := json.Compact(&out, trimmed); err != nil {
			return "", access.BadRequest("the body is not valid JSON: %v", err)
		}
		return out.String(), nil
	}
	var units []json.RawMessage
	if err := json.Unmarshal(trimmed, &units); err != nil {
		return "", access.BadRequest("the body is not valid JSON: %v", err)
	}
	if len(units) == 0 && !emptyOK {
		return "", access.BadRequest("an empty JSON array appends nothing")
	}
	for i, u := range units {
		if i > 0 {
			out.WriteByte(',')
		}
		if err := json.Compact(&out, u); err != nil {
			return "", access.BadRequest("the body is not valid JSON: %v", err)
		}
	}
	return out.String(), nil
}

// readQuery is a GET's parsed query.
type readQuery struct {
	live   string // "", "long-poll" or "sse"
	cursor string
}

// parseRead reads a GET's query: offset (once; required for live reads),
// live and cursor. Unknown parameters are ignored.
func parseRead(r *http.Request) (readQuery, string, error) {
	var q readQuery
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return q, "", access.BadRequest("malformed query: %v", err)
	}
	offs, hasOffset := vals["offset"]
	if len(offs) > 1 {
		return q, "", access.BadRequest("give the offset parameter once")
	}
	raw := "-1"
	if hasOffset {
		raw = offs[0]
		if raw == "" {
			return q, "", access.BadRequest("empty offset: use -1, now, or a Stream-Next-Offset")
		}
	}
	switch live := vals.Get("live"); live {
	case "", "long-poll", "sse":
		q.live = live
	default:
		return q, "", access.BadRequest("live must be long-poll or sse (got %q)", clipStr(live))
	}
	if q.live != "" && !hasOffset {
		return q, "", access.BadRequest("a live read (live=%s) needs an offset", q.live)
	}
	q.cursor = vals.Get("cursor")
	return q, raw, nil
}
