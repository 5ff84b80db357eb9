// Package send carries messages from clients to the server. A client sends
// over its WebSocket (a "send" frame) or, on SSE, with POST /send; both go
// through one Service, which validates the message, asks the policy hook,
// publishes it to the topic it names and forwards it to the application's
// webhook, once per (client id, message id) within a dedupe window, so that
// a client may retry a message after a transport switch without it being
// delivered twice.
package send

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/api"
	"github.com/heraldpush/herald/internal/hub"
	"github.com/heraldpush/herald/internal/outage"
	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/sse"
)

// MaxIDLen is the longest client id or message id accepted, in bytes.
const MaxIDLen = 128

// Message is one client message.
type Message struct {
	// ClientID identifies the sending client (a browser tab, say); it is
	// the same on every transport the client uses.
	ClientID string
	// MsgID is chosen by the client, unique among its messages; a retry
	// carries the same MsgID.
	MsgID string
	// Topic, if set, is where the message is published.
	Topic string
	// Event is the event type it is published with (optional).
	Event string
	// Data is any JSON value. A JSON string is published as its text, any
	// other value as its compact JSON text.
	Data json.RawMessage
}

// Ack is the server's acknowledgement of a delivered message.
type Ack struct {
	MsgID string `json:"msgId"`
	// ID is the event id the message got when published to its topic.
	ID string `json:"id,omitempty"`
	// Duplicate reports that the message had been delivered before: this
	// ack answers a retry, nothing was delivered again.
	Duplicate bool `json:"duplicate,omitempty"`
}

// Errors are *access.Error values: a message the server refused (4xx: do
// not retry) or could not deliver now (5xx: retry with the same message
// id; see access.Error.Retryable).
func errorf(status int, format string, args ...any) *access.Error {
	e := &access.Error{Status: status, Msg: fmt.Sprintf(format, args...)}
	if status == http.StatusServiceUnavailable {
		e.RetryAfter = 1
	}
	return e
}

// Service delivers client messages. Its fields must not change after the
// first call; Hub and Dedupe are required.
type Service struct {
	Hub *hub.Hub
	// Dedupe remembers delivered messages.
	Dedupe *Dedupe
	// Access decides whether the client that made r may send a message to
	// its topic (action access.Send; face access.FaceWS or
	// access.FaceSend), charging the publish rate per message, and names
	// the sender: message ids are remembered per sender, so that one
	// client cannot pre-empt or probe another's. Nil allows every topic
	// (unit tests).
	Access access.Decider
	// Webhook, if set, receives every message.
	Webhook *Webhook
	// MaxDataBytes bounds a message's data. Default 1 MiB.
	MaxDataBytes int
	// Timeout bounds one delivery (publish and webhook). A delivery that
	// has started runs to its end even if the client goes away, so that a
	// retry finds it done. Default: the webhook's timeout + 10s.
	Timeout time.Duration
	// Observe, if set, is told the outcome of each message, by transport:
	// "delivered", "duplicate", "rejected" or "failed".
	Observe func(transport, result string)
	// Failures, if set, counts and logs failed publishes and webhook calls
	// (see outage); nil logs each to slog.Default.
	Failures *outage.Reporter
	// Logger receives the service's logs; default slog.Default(). (It
	// logs nothing at present: failures go through Failures.)
	Logger *slog.Logger
}

// Deliver delivers m, which came over transport ("ws" or "http") with
// request r, and returns its ack, or an *access.Error.
func (s *Service) Deliver(ctx context.Context, r *http.Request, transport string, m *Message) (Ack, error) {
	ack, err := s.deliver(ctx, r, transport, m)
	if s.Observe != nil {
		var e *access.Error
		switch {
		case err == nil && ack.Duplicate:
			s.Observe(transport, "duplicate")
		case err == nil:
			s.Observe(transport, "delivered")
		case errors.As(err, &e) && !e.Retryable():
			s.Observe(transport, "rejected")
		default:
			s.Observe(transport, "failed")
		}
	}
	return ack, err
}

func (s *Service) deliver(ctx context.Context, r *http.Request, transport string, m *Message) (Ack, error) {
	pm, text, sender, err := s.check(r, transport, m)
	if err != nil {
		return Ack{}, err
	}
	e, err := s.Dedupe.acquire(ctx, sender+"\x00"+m.ClientID+"\x00"+m.MsgID)
	if err != nil {
		return Ack{}, errorf(http.StatusServiceUnavailable, "gave up waiting for an earlier attempt of message %q: %v", m.MsgID, err)
	}
	defer e.release()

	fp := fingerprint(m.Topic, m.Event, text)
	switch {
	case e.fingerprint == "":
		e.fingerprint = fp
	case e.fingerprint != fp:
		return Ack{}, errorf(http.StatusConflict, "message id %q was already used for a different message", m.MsgID)
	}
	if e.done {
		if e.err != nil {
			return Ack{}, e.err
		}
		return Ack{MsgID: m.MsgID, ID: e.published, Duplicate: true}, nil
	}

	// Once started, a delivery is not cut short by the client leaving: a
	// retry must find it either done or not started.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout())
	defer cancel()
	if pm != nil && e.published == "" {
		pos, err := s.Hub.Publish(dctx, pm)
		if err != nil {
			return Ack{}, s.publishError(e, err)
		}
		e.published = pos.String()
	}
	if s.Webhook != nil && !e.forwarded {
		p := &Payload{ClientID: m.ClientID, MsgID: m.MsgID, Topic: m.Topic, ID: e.published, Event: m.Event, Data: compactData(m.Data), Transport: transport}
		if err := s.Webhook.Forward(dctx, p); err != nil {
			return Ack{}, s.webhookError(e, err)
		}
		e.forwarded = true
	}
	e.done = true
	return Ack{MsgID: m.MsgID, ID: e.published}, nil
}

func (s *Service) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	t := 5 * time.Second
	if s.Webhook != nil && s.Webhook.Timeout > 0 {
		t = s.Webhook.Timeout
	}
	return t + 10*time.Second
}

// check validates m and asks the policy. It returns the message to publish
// (nil without a topic), the data as published, and the sender's name
// (the policy's Decision.Owner) that message ids are remembered under.
func (s *Service) check(r *http.Request, transport string, m *Message) (*pubsub.Message, string, string, error) {
	if err := CheckID("clientId", m.ClientID); err != nil {
		return nil, "", "", err
	}
	if err := CheckID("msgId", m.MsgID); err != nil {
		return nil, "", "", err
	}
	text, err := dataText(m.Data)
	if err != nil {
		return nil, "", "", err
	}
	maxData := s.MaxDataBytes
	if maxData <= 0 {
		maxData = 1 << 20
	}
	if len(text) > maxData {
		return nil, "", "", &access.Error{Status: http.StatusRequestEntityTooLarge, Code: access.CodeTooLarge, Msg: fmt.Sprintf("data is %d bytes, over the limit of %d", len(text), maxData)}
	}
	if !utf8.ValidString(text) {
		return nil, "", "", errorf(http.StatusBadRequest, "data must be valid UTF-8")
	}
	var pm *pubsub.Message
	if m.Topic == "" {
		if m.Event != "" {
			return nil, "", "", errorf(http.StatusBadRequest, `"event" given without "topic"`)
		}
		if s.Webhook == nil {
			return nil, "", "", errorf(http.StatusBadRequest, `missing "topic": name the topic to publish the message to (no --send-webhook is configured)`)
		}
	} else {
		if err := hub.ValidateTopic(m.Topic); err != nil {
			return nil, "", "", errorf(http.StatusBadRequest, "topic: %v", err)
		}
		if err := checkEventType(m.Event); err != nil {
			return nil, "", "", err
		}
		pm = &pubsub.Message{Topics: []string{m.Topic}, Type: m.Event, Data: text}
	}
	face := access.FaceSend
	if transport == "ws" {
		face = access.FaceWS
	}
	var topics []string
	if pm != nil {
		topics = pm.Topics
	}
	d, err := access.Ask(s.Access, r, access.Query{Action: access.Send, Face: face, Topics: topics})
	if err != nil {
		return nil, "", "", err
	}
	return pm, text, d.Owner, nil
}

// checkEventType applies the publish API's rules to an event type.
func checkEventType(t string) error {
	switch {
	case len(t) > api.MaxEventTypeLen:
		return errorf(http.StatusBadRequest, "event type longer than %d bytes", api.MaxEventTypeLen)
	case sse.ValidType(t) != nil:
		return errorf(http.StatusBadRequest, "invalid event type: it must not contain CR or LF")
	case strings.HasPrefix(t, api.ReservedTypePrefix):
		return errorf(http.StatusBadRequest, "event type %q is reserved: types starting with %q are Herald's own", t, api.ReservedTypePrefix)
	case !utf8.ValidString(t):
		return errorf(http.StatusBadRequest, "event type must be valid UTF-8")
	}
	return nil
}

func (s *Service) publishError(e *entry, err error) *access.Error {
	switch {
	case errors.Is(err, pubsub.ErrTopicFinished):
		e.done, e.err = true, errorf(http.StatusConflict, "%v", err)
		return e.err
	case errors.Is(err, pubsub.ErrTooLarge):
		e.done, e.err = true, errorf(http.StatusRequestEntityTooLarge, "the event is larger than the broker accepts: %v", err)
		return e.err
	case errors.Is(err, pubsub.ErrUnavailable), errors.Is(err, pubsub.ErrClosed), errors.Is(err, hub.ErrClosed), errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusServiceUnavailable, "cannot publish now: %v", err)
	}
	s.Failures.Fail(outage.Publish, fmt.Errorf("client message: %w", err))
	return errorf(http.StatusServiceUnavailable, "cannot publish now: %v", err)
}

func (s *Service) webhookError(e *entry, err error) *access.Error {
	var we *webhookError
	if errors.As(err, &we) {
		switch {
		case we.status >= 400 && we.status <= 499:
			// The backend refused the message: retrying will not help.
			e.done, e.err = true, errorf(http.StatusUnprocessableEntity, "the application backend refused the message (status %d)", we.status)
			return e.err
		case we.timeout:
			return errorf(http.StatusGatewayTimeout, "the application backend did not answer in time")
		}
	}
	s.Failures.Fail(outage.Webhook, err)
	return errorf(http.StatusBadGateway, "the application backend could not take the message: %v", err)
}

// CheckID checks a client id or message id: 1 to MaxIDLen bytes of
// printable ASCII without spaces. field names it in the error (an
// *access.Error).
func CheckID(field, id string) error {
	if id == "" {
		return errorf(http.StatusBadRequest, "missing %q", field)
	}
	if len(id) > MaxIDLen {
		return errorf(http.StatusBadRequest, "%q longer than %d bytes", field, MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return errorf(http.StatusBadRequest, "%q must be printable ASCII without spaces", field)
		}
	}
	return nil
}

// dataText returns the text a message's data is published as.
func dataText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", errorf(http.StatusBadRequest, "data: %v", err)
		}
		return s, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", errorf(http.StatusBadRequest, "data: %v", err)
	}
	return buf.String(), nil
}

func compactData(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if json.Compact(&buf, raw) != nil {
		return nil
	}
	return buf.Bytes()
}

func fingerprint(topic, event, data string) string {
	h := sha256.New()
	for _, s := range []string{topic, event, data} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return string(h.Sum(nil))
}
