package send

import (
	"encoding/json"
	"mime"
	"net/http"
	"unicode/utf8"

	"github.com/heraldpush/herald/internal/access"
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
		access.WriteMethodNotAllowed(w, r, "POST")
		return
	}
	in, err := h.parse(w, r)
	if err != nil {
		access.Write(w, r, err)
		return
	}
	ack, err := h.Service.Deliver(r.Context(), r, "http", &Message{ClientID: in.ClientID, MsgID: in.MsgID, Topic: in.Topic, Event: in.Event, Data: in.Data})
	if err != nil {
		access.Write(w, r, err)
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
	body, err := access.ReadBody(w, r, limit)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(body) {
		// encoding/json would silently turn invalid bytes into U+FFFD;
		// /publish refuses them the same way.
		return nil, errorf(http.StatusBadRequest, "malformed JSON: the body is not valid UTF-8")
	}
	var in Input
	if err := DecodeStrict(body, &in); err != nil {
		return nil, err
	}
	return &in, nil
}

// DecodeStrict decodes exactly one JSON value from body into v, refusing
// unknown fields, names given twice and trailing data (see
// httpjson.DecodeStrict), with an *access.Error (400) on failure.
func DecodeStrict(body []byte, v any) error {
	if err := httpjson.DecodeStrict(body, v); err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	return nil
}
