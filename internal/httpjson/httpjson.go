// Package httpjson writes JSON responses and the JSON error bodies every
// Herald endpoint answers bad requests with: {"error": "..."}.
package httpjson

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Write sends v as JSON with the given status.
func Write(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error: cannot encode response"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// WriteJSON sends body, already encoded JSON ending with a newline, with
// the headers Write sends.
func WriteJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = contentType
	h["Cache-Control"] = noStore
	h["X-Content-Type-Options"] = nosniff
	w.WriteHeader(status)
	w.Write(body)
}

// Shared header values (net/http does the same for its own): a handler
// that adds a value to one of these headers appends to a full slice, which
// copies it.
var (
	contentType = []string{"application/json"}
	noStore     = []string{"no-store"}
	nosniff     = []string{"nosniff"}
)

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error string `json:"error"`
	// Code, when set, is a stable machine-readable reason (e.g.
	// "token_expired").
	Code string `json:"code,omitempty"`
}

// Error sends {"error": msg} with the given status.
func Error(w http.ResponseWriter, status int, msg string) {
	Write(w, status, ErrorBody{Error: msg})
}

// Errorf sends a formatted error message with the given status.
func Errorf(w http.ResponseWriter, status int, format string, args ...any) {
	Error(w, status, fmt.Sprintf(format, args...))
}

// ErrorCode sends {"error": msg, "code": code} with the given status.
func ErrorCode(w http.ResponseWriter, status int, code, msg string) {
	Write(w, status, ErrorBody{Error: msg, Code: code})
}
