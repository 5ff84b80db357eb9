package send

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/heraldpush/herald/internal/httpjson"
)

// Input is the JSON body of POST /send.
type Input struct {
	ClientID string          `json:"clientId"`
	MsgID    string          `json:"msgId"`
	Topic    string          `json:"topic,omitempty"`
	Event    string          `json:"event,omitempty"`
	Data     json.RawMessage `json:"data,omitempty"`
}

// Handler serves POST /send: a client message over plain HTTP, for clients
// that receive over SSE. It answers 200 with an Ack, or a JSON error.
type Handler struct {
	Service *Service
	// MaxBodyBytes bounds the request body. Default: the service's data
	// limit (times 2, for JSON escaping) + 64 KiB.
	MaxBodyBytes int64
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		httpjson.Error(w, http.StatusMethodNotAllowed, "method not allowed: use POST")
		return
	}
	in, err := h.parse(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	ack, err := h.Service.Deliver(r.Context(), r, "http", &Message{ClientID: in.ClientID, MsgID: in.MsgID, Topic: in.Topic, Event: in.Event, Data: in.Data})
	if err != nil {
		writeError(w, err)
		return
	}
	httpjson.Write(w, http.StatusOK, ack)
}

func (h *Handler) parse(w http.ResponseWriter, r *http.Request) (*Input, error) {
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, errorf(http.StatusUnsupportedMediaType, "unsupported Content-Type %q: use application/json", ct)
	}
	limit := h.MaxBodyBytes
	if limit <= 0 {
		data := int64(h.Service.MaxDataBytes)
		if data <= 0 {
			data = 1 << 20
		}
		limit = 2*data + 64<<10
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errorf(http.StatusRequestEntityTooLarge, "request body over %d bytes", mbe.Limit)
		}
		return nil, errorf(http.StatusBadRequest, "reading the body: %v", err)
	}
	var in Input
	if err := DecodeStrict(body, &in); err != nil {
		return nil, err
	}
	return &in, nil
}

// DecodeStrict decodes exactly one JSON value from body into v, refusing
// unknown fields and trailing data, with an *Error (400) on failure.
func DecodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, "malformed JSON: trailing data after the value")
	}
	return nil
}

func writeError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = &Error{Status: http.StatusInternalServerError, Msg: fmt.Sprint(err)}
	}
	switch {
	case e.RetryAfter > 0:
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	case e.Status == http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
	}
	httpjson.ErrorCode(w, e.Status, e.Code, e.Msg)
}
