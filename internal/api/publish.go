// Package api serves Herald's publish endpoint, POST /publish.
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/httpjson"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/metrics"
	"github.com/heraldpush/herald/internal/outage"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/sse"
)

// MaxEventTypeLen is the longest event type accepted, in bytes.
const MaxEventTypeLen = 256

// ReservedTypePrefix starts the event types Herald itself sends.
const ReservedTypePrefix = "herald."

// MaxBatchBodyBytes bounds the body of a JSON batch (an array of events),
// unless one event's limit (twice --max-data-bytes plus 64 KiB, for JSON
// escaping) is larger. Each event of the batch is also held to
// --max-data-bytes.
const MaxBatchBodyBytes = 64 << 20

// Publisher serves POST /publish. Its fields must not change after the
// first request.
type Publisher struct {
	Hub *hub.Hub
	// MaxDataBytes bounds an event's data.
	MaxDataBytes int
	// MaxTopics bounds an event's topics.
	MaxTopics int
	// MaxBatch bounds the events of one batch request.
	MaxBatch int
	// Metrics, if set, time publishes and count rejections.
	Metrics *metrics.Metrics
	// Logger receives the publisher's logs; default slog.Default(). (It
	// logs nothing at present: failures go through Metrics.Failed.)
	Logger *slog.Logger
	// Access decides whether the request may publish each event (face
	// access.FacePublish), and charges the publish rate once per request;
	// it refuses with an *access.Error. Nil allows every request (unit
	// tests).
	Access access.Decider
}

func badRequest(format string, args ...any) error { return access.BadRequest(format, args...) }

// Input is one event as a publisher sends it in JSON.
type Input struct {
	Topic   string          `json:"topic,omitempty"`
	Topics  []string        `json:"topics,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Event   string          `json:"event,omitempty"`
	Retain  bool            `json:"retain,omitempty"`
	Final   bool            `json:"final,omitempty"`
	Private bool            `json:"private,omitempty"`
	// ID makes publishing idempotent: an event published again with the
	// ID of one published in the last two minutes is stored once, and the
	// answer is the first one's id. Give one to retry a publish safely
	// (after a 503, for example when the event's topics are on several
	// shards and one of them failed).
	ID string `json:"id,omitempty"`
}

// Result is the answer to a publish.
type Result struct {
	ID string `json:"id"`
}

// BatchResult is the answer to a batch publish: the ids in request order.
type BatchResult struct {
	IDs []string `json:"ids"`
}

func (p *Publisher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		access.WriteMethodNotAllowed(w, r, "POST")
		return
	}
	msgs, batch, err := p.parse(w, r)
	if err != nil {
		access.Write(w, r, err)
		return
	}
	for _, m := range msgs {
		if _, err := access.Ask(p.Access, r, access.Query{Action: access.Publish, Face: access.FacePublish, Topics: m.Topics}); err != nil {
			access.Write(w, r, err)
			return
		}
	}
	if len(msgs) == 1 {
		if _, err := p.Hub.Publish(r.Context(), msgs[0]); err != nil {
			access.Write(w, r, p.publishError(err, ""))
			return
		}
	} else if n, err := p.Hub.PublishBatch(r.Context(), msgs); err != nil {
		access.Write(w, r, p.publishError(err, fmt.Sprintf("event %d of the batch (the %d before it were published): ", n, n)))
		return
	}
	if p.Metrics != nil {
		p.Metrics.PublishDuration.Observe(time.Since(start).Seconds())
	}
	// Ids are "<epoch>-<offset>" with an epoch of letters, digits and
	// underscores (pubsub.ValidEpoch): they need no JSON escaping.
	var body []byte
	if batch {
		body = make([]byte, 0, 10+len(msgs)*24)
		body = append(body, `{"ids":[`...)
		for i, m := range msgs {
			if i > 0 {
				body = append(body, ',')
			}
			body = appendID(body, m.Pos)
		}
		body = append(body, "]}\n"...)
	} else {
		body = make([]byte, 0, 40)
		body = append(body, `{"id":`...)
		body = appendID(body, msgs[0].Pos)
		body = append(body, "}\n"...)
	}
	httpjson.WriteJSON(w, http.StatusOK, body)
}

// appendID appends pos as a JSON string.
func appendID(b []byte, pos pubsub.Position) []byte {
	b = append(b, '"')
	b = append(b, pos.Epoch...)
	b = append(b, '-')
	b = strconv.AppendUint(b, pos.Offset, 10)
	return append(b, '"')
}

// publishError turns a failed publish into the answer: 409 for a
// finished topic, 503 (retry) when the broker cannot take it now.
func (p *Publisher) publishError(err error, prefix string) error {
	msg := prefix + err.Error()
	switch {
	case errors.Is(err, pubsub.ErrTopicFinished):
		return &access.Error{Status: http.StatusConflict, Code: "topic_finished", Msg: msg, Err: err}
	case errors.Is(err, hub.ErrInvalidTopic), errors.Is(err, hub.ErrInvalidMessage):
		return &access.Error{Status: http.StatusBadRequest, Msg: msg, Err: err}
	case errors.Is(err, pubsub.ErrClosed), errors.Is(err, hub.ErrClosed):
	default:
		// The broker cannot take it (unavailable, or failing): counted and
		// summarised by the outage reporter, not logged per request.
		p.Metrics.Failed(outage.Publish, err)
	}
	return &access.Error{Status: http.StatusServiceUnavailable, Msg: msg, RetryAfter: 1, Err: err}
}

func (p *Publisher) maxBatch() int {
	if p.MaxBatch > 0 {
		return p.MaxBatch
	}
	return 1000
}

// parse reads the request body into messages. batch reports a JSON array.
func (p *Publisher) parse(w http.ResponseWriter, r *http.Request) (msgs []*pubsub.Message, batch bool, err error) {
	ct := r.Header.Get("Content-Type")
	mt := ct
	if ct != "application/x-www-form-urlencoded" && ct != "application/json" {
		mt, _, err = mime.ParseMediaType(ct)
	}
	if ct == "" || err != nil {
		return nil, false, unsupported(ct)
	}
	switch mt {
	case "application/x-www-form-urlencoded":
		body, err := access.ReadBody(w, r, int64(3*p.MaxDataBytes+64<<10))
		if err != nil {
			return nil, false, err
		}
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, false, badRequest("malformed form body: %v", err)
		}
		m, err := p.fromForm(vals)
		if err != nil {
			return nil, false, err
		}
		return []*pubsub.Message{m}, false, nil
	case "application/json":
		limit := int64(2*p.MaxDataBytes + 64<<10)
		body, err := access.ReadBody(w, r, max(limit, min(limit*int64(p.maxBatch()), MaxBatchBodyBytes)))
		if err != nil {
			return nil, false, err
		}
		if !utf8.Valid(body) {
			// encoding/json would silently turn invalid bytes into U+FFFD.
			return nil, false, badRequest("malformed JSON: the body is not valid UTF-8")
		}
		body = bytes.TrimSpace(body)
		if len(body) > 0 && body[0] == '[' {
			ins, ok := parseBatchFast(body)
			if !ok {
				if err := decodeStrict(body, &ins); err != nil {
					return nil, true, err
				}
			}
			if len(ins) == 0 || len(ins) > p.maxBatch() {
				return nil, true, badRequest("a batch holds 1 to %d events, got %d", p.maxBatch(), len(ins))
			}
			msgs = make([]*pubsub.Message, 0, len(ins))
			for i := range ins {
				m, err := p.fromInput(&ins[i])
				if err != nil {
					var se *access.Error
					if errors.As(err, &se) {
						// Keep the status (e.g. 413 for data over the limit).
						e := *se
						e.Msg = fmt.Sprintf("event %d: %s", i, se.Msg)
						return nil, true, &e
					}
					return nil, true, badRequest("event %d: %v", i, err)
				}
				msgs = append(msgs, m)
			}
			return msgs, true, nil
		}
		if int64(len(body)) > limit {
			return nil, false, access.TooLarge(limit)
		}
		var in Input
		if !parseInputFast(body, &in) {
			in = Input{}
			if err := decodeStrict(body, &in); err != nil {
				return nil, false, err
			}
		}
		m, err := p.fromInput(&in)
		if err != nil {
			return nil, false, err
		}
		return []*pubsub.Message{m}, false, nil
	}
	return nil, false, unsupported(mt)
}

func unsupported(ct string) error {
	return &access.Error{Status: http.StatusUnsupportedMediaType, Msg: fmt.Sprintf("unsupported Content-Type %q: use application/x-www-form-urlencoded or application/json", ct)}
}

// decodeStrict decodes one JSON value (see httpjson.DecodeStrict: unknown
// fields and names given twice are refused) with a 400 error.
func decodeStrict(body []byte, v any) error {
	if err := httpjson.DecodeStrict(body, v); err != nil {
		return badRequest("%v", err)
	}
	return nil
}

var formFields = map[string]bool{"topic": true, "data": true, "event": true, "retain": true, "final": true, "private": true, "id": true}

func (p *Publisher) fromForm(vals url.Values) (*pubsub.Message, error) {
	for k := range vals {
		if !formFields[k] {
			return nil, badRequest("unknown field %q (known: topic, data, event, retain, final, private, id)", k)
		}
	}
	for _, k := range []string{"data", "event", "retain", "final", "private", "id"} {
		if len(vals[k]) > 1 {
			return nil, badRequest("field %q given %d times", k, len(vals[k]))
		}
	}
	m := &pubsub.Message{Topics: vals["topic"], Type: vals.Get("event"), Data: vals.Get("data"), ID: vals.Get("id")}
	var err error
	if m.Retain, err = formBool(vals, "retain"); err != nil {
		return nil, err
	}
	if m.Final, err = formBool(vals, "final"); err != nil {
		return nil, err
	}
	if m.Private, err = formBool(vals, "private"); err != nil {
		return nil, err
	}
	return m, p.validate(m)
}

func formBool(vals url.Values, key string) (bool, error) {
	switch strings.ToLower(vals.Get(key)) {
	case "", "false", "0", "off", "no":
		return false, nil
	case "true", "1", "on", "yes":
		return true, nil
	}
	return false, badRequest("field %q: %q is not a boolean (true or false)", key, vals.Get(key))
}

func (p *Publisher) fromInput(in *Input) (*pubsub.Message, error) {
	m := &pubsub.Message{Type: in.Event, Retain: in.Retain, Final: in.Final, Private: in.Private, ID: in.ID}
	switch {
	case in.Topic != "" && len(in.Topics) > 0:
		return nil, badRequest(`give either "topic" or "topics", not both`)
	case in.Topic != "":
		m.Topics = []string{in.Topic}
	default:
		m.Topics = in.Topics
	}
	if len(in.Data) > 0 && string(in.Data) != "null" {
		if in.Data[0] == '"' && bytes.IndexByte(in.Data, '\\') < 0 {
			// A JSON string without escapes is its bytes between the
			// quotes (the body was checked: valid JSON, valid UTF-8).
			m.Data = string(in.Data[1 : len(in.Data)-1])
		} else if in.Data[0] == '"' {
			if err := json.Unmarshal(in.Data, &m.Data); err != nil {
				return nil, badRequest("data: %v", err)
			}
		} else {
			var buf bytes.Buffer
			if err := json.Compact(&buf, in.Data); err != nil {
				return nil, badRequest("data: %v", err)
			}
			m.Data = buf.String()
		}
	}
	return m, p.validate(m)
}

// validate checks a message against the API's rules.
func (p *Publisher) validate(m *pubsub.Message) error {
	if len(m.Topics) == 0 {
		return badRequest(`missing topic: give "topic" (or "topics" in JSON)`)
	}
	if p.MaxTopics > 0 && len(m.Topics) > p.MaxTopics {
		return &access.Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf("too many topics: %d (limit %d)", len(m.Topics), p.MaxTopics), Reason: "max_topics"}
	}
	dup := false
	for i, t := range m.Topics {
		if err := hub.ValidateTopic(t); err != nil {
			return badRequest("%v", err)
		}
		dup = dup || slices.Contains(m.Topics[:i], t)
	}
	if dup {
		topics := m.Topics[:0:0]
		for _, t := range m.Topics {
			if !slices.Contains(topics, t) {
				topics = append(topics, t)
			}
		}
		m.Topics = topics
	}
	if len(m.Type) > MaxEventTypeLen {
		return badRequest("event type longer than %d bytes", MaxEventTypeLen)
	}
	if err := sse.ValidType(m.Type); err != nil {
		return badRequest("invalid event type: it must not contain CR or LF")
	}
	if strings.HasPrefix(m.Type, ReservedTypePrefix) {
		return badRequest("event type %q is reserved: types starting with %q are Herald's own", m.Type, ReservedTypePrefix)
	}
	if !utf8.ValidString(m.Type) || !utf8.ValidString(m.Data) {
		return badRequest("event type and data must be valid UTF-8")
	}
	if err := validID(m.ID); err != nil {
		return err
	}
	if len(m.Data) > p.MaxDataBytes {
		return &access.Error{Status: http.StatusRequestEntityTooLarge, Code: access.CodeTooLarge, Msg: fmt.Sprintf("data is %d bytes, over the limit of %d", len(m.Data), p.MaxDataBytes)}
	}
	return nil
}

// validID checks a publisher's event id (Input.ID): empty, or 1 to
// pubsub.MaxIDLen printable ASCII characters.
func validID(id string) error {
	if len(id) > pubsub.MaxIDLen {
		return badRequest("id longer than %d bytes", pubsub.MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f {
			return badRequest("id: use printable ASCII characters without spaces")
		}
	}
	return nil
}
