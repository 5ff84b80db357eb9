package mercure

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/api"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/outage"
	"github.com/heraldpush/herald/internal/topicmatch"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/sse"
)

// MaxIDLen is the longest publisher-chosen event id accepted, in bytes.
const MaxIDLen = 256

// EarliestID is the reserved Last-Event-ID that asks for all the history
// the hub has.
const EarliestID = "earliest"

// update is a parsed publish request.
type update struct {
	topics  []string
	data    string
	private bool
	meta    meta
	typ     string
}

// publish serves POST /.well-known/mercure.
func (h *Handler) publish(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	u, err := h.parseUpdate(w, r)
	if err != nil {
		access.Write(w, r, err)
		return
	}
	// Mercure: every topic of the update, canonical and alternates, must
	// be selected by the token's mercure.publish claim; none may lie in
	// the hub's reserved namespace (or another face's).
	if _, err := h.ask(r, access.Publish, u.topics); err != nil {
		refuse(w, r, err)
		return
	}
	if id := u.meta.ID; id != "" {
		if err := h.checkID(id); err != nil {
			access.Write(w, r, err)
			return
		}
	}
	// A publisher's id may be reused, as with the reference hub (a retried
	// publish, an id per resource): the index keeps its latest update, and
	// resuming from it resumes after that one.
	m := &pubsub.Message{
		Topics:  append(u.topics, HubTopic),
		Type:    u.typ,
		Data:    u.data,
		Meta:    wrap(u.meta),
		Private: u.private,
	}
	pos, err := h.o.Hub.Publish(r.Context(), m)
	if err != nil {
		access.Write(w, r, h.publishError(err))
		return
	}
	id := pos.String()
	if u.meta.ID != "" {
		h.index.put(u.meta.ID, pos)
		id = u.meta.ID
	}
	if h.o.Metrics != nil {
		h.o.Metrics.PublishDuration.Observe(time.Since(start).Seconds())
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, id)
}

func (h *Handler) publishError(err error) error {
	switch {
	case errors.Is(err, pubsub.ErrTopicFinished):
		return &access.Error{Status: http.StatusConflict, Code: "topic_finished", Msg: err.Error(), Err: err}
	case errors.Is(err, hub.ErrInvalidTopic), errors.Is(err, hub.ErrInvalidMessage):
		return badRequest(err.Error())
	case errors.Is(err, pubsub.ErrClosed), errors.Is(err, hub.ErrClosed):
		return &access.Error{Status: http.StatusServiceUnavailable, Msg: "cannot publish now: " + err.Error(), RetryAfter: 1, Err: err}
	}
	h.o.Metrics.Failed(outage.Publish, err)
	return &access.Error{Status: http.StatusServiceUnavailable, Msg: "cannot publish now: " + err.Error(), RetryAfter: 1, Err: err}
}

// checkID refuses a publisher-chosen id that would be ambiguous on resume:
// Herald's own ids have the form <epoch>-<offset> (or a vector of shard
// positions), and an id of that form in a current epoch names a position.
func (h *Handler) checkID(id string) error {
	if h.o.Hub.KnownID(id) {
		return badRequest(fmt.Sprintf("id %q has the form of Herald's own event ids (<epoch>-<offset>) in the current epoch: choose another", id))
	}
	return nil
}

// singular are the publish fields that may be given once at most.
var singular = []string{"data", "private", "id", "type", "retry"}

// parseUpdate reads and checks a publish form.
func (h *Handler) parseUpdate(w http.ResponseWriter, r *http.Request) (*update, error) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, access.Errorf(http.StatusUnsupportedMediaType, "", "unsupported Content-Type %q: a Mercure update is an application/x-www-form-urlencoded form", ct)
	}
	body, err := access.ReadBody(w, r, int64(3*h.o.MaxDataBytes+64<<10))
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("malformed form body: " + err.Error())
	}
	for _, k := range singular {
		if len(form[k]) > 1 {
			return nil, badRequest(fmt.Sprintf("field %q given %d times (only \"topic\" may repeat)", k, len(form[k])))
		}
	}
	u := &update{topics: form["topic"], data: form.Get("data"), typ: form.Get("type")}
	// Mercure: the presence of "private" makes the update private, whatever
	// its value ("on" by convention).
	_, u.private = form["private"]
	switch {
	case len(u.topics) == 0:
		return nil, badRequest(`missing "topic" field`)
	case len(u.topics) > h.o.MaxTopics:
		return nil, &access.Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("too many topics: %d (limit %d)", len(u.topics), h.o.MaxTopics), Reason: "max_topics"}
	}
	seen := make(map[string]bool, len(u.topics))
	topics := u.topics[:0:0]
	for _, t := range u.topics {
		if err := hub.ValidateTopic(t); err != nil {
			return nil, badRequest(fmt.Sprintf("topic %q: %v", clip(t), err))
		}
		if err := topicmatch.CheckValue(t); err != nil {
			return nil, badRequest(fmt.Sprintf("topic %q: %v", clip(t), err))
		}
		if t == topicmatch.Wildcard {
			return nil, badRequest(`topic "*" is reserved: it is the selector of every topic, so no subscriber could select it alone`)
		}
		if !seen[t] {
			seen[t] = true
			topics = append(topics, t)
		}
	}
	u.topics = topics
	if !utf8.ValidString(u.data) {
		return nil, badRequest("data must be valid UTF-8")
	}
	if len(u.data) > h.o.MaxDataBytes {
		return nil, access.Errorf(http.StatusRequestEntityTooLarge, access.CodeTooLarge, "data is %d bytes, over the limit of %d", len(u.data), h.o.MaxDataBytes)
	}
	switch {
	case len(u.typ) > api.MaxEventTypeLen:
		return nil, badRequest(fmt.Sprintf("type longer than %d bytes", api.MaxEventTypeLen))
	case !utf8.ValidString(u.typ):
		return nil, badRequest("type must be valid UTF-8")
	case sse.ValidType(u.typ) != nil:
		return nil, badRequest("invalid type: it must not contain CR or LF")
	case strings.HasPrefix(u.typ, api.ReservedTypePrefix):
		return nil, badRequest(fmt.Sprintf("type %q is reserved: types starting with %q are Herald's own", u.typ, api.ReservedTypePrefix))
	}
	if err := topicmatch.CheckValue(u.typ); err != nil {
		return nil, badRequest("invalid type: " + err.Error())
	}
	if _, ok := form["id"]; ok {
		id := form.Get("id")
		switch {
		case id == "":
			return nil, badRequest(`empty "id": leave the field out to get a hub-generated id`)
		case len(id) > MaxIDLen:
			return nil, badRequest(fmt.Sprintf("id longer than %d bytes", MaxIDLen))
		case !utf8.ValidString(id):
			return nil, badRequest("id must be valid UTF-8")
		case sse.ValidID(id) != nil:
			return nil, badRequest("invalid id: it must not contain CR, LF or NUL")
		case id[0] == '#':
			return nil, badRequest(`invalid id: it must not start with "#" (Mercure reserves those for hubs)`)
		case id == EarliestID:
			return nil, badRequest(`invalid id: "earliest" is reserved (it asks for all history)`)
		}
		if err := topicmatch.CheckValue(id); err != nil {
			return nil, badRequest("invalid id: " + err.Error())
		}
		u.meta.ID = id
	}
	if rs := form.Get("retry"); rs != "" { // empty: no retry, as Mercure reads it
		ms, err := parseDigits(rs)
		if err != nil {
			return nil, badRequest(fmt.Sprintf("invalid retry %q: %v", rs, err))
		}
		u.meta.Retry = time.Duration(ms) * time.Millisecond
	}
	return u, nil
}

// maxRetryMS is the largest retry accepted: about 24 days, far beyond any
// sensible reconnection delay, and safe from overflow.
const maxRetryMS = 1<<31 - 1

// parseDigits parses a retry value: ASCII digits only, in milliseconds.
func parseDigits(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty: give a number of milliseconds")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("only ASCII digits (milliseconds) are allowed")
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxRetryMS {
		return 0, fmt.Errorf("over the limit of %d ms", maxRetryMS)
	}
	return n, nil
}
