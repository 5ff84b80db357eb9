package access

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/heraldpush/herald/internal/auth"
	"github.com/heraldpush/herald/internal/httpjson"
)

// Error codes: the "code" of a refused request's JSON body. They are stable;
// clients may switch on them. The token codes are auth's.
const (
	CodeTokenMissing    = auth.CodeTokenMissing
	CodeTokenInvalid    = auth.CodeTokenInvalid
	CodeTokenExpired    = auth.CodeTokenExpired
	CodeTopicForbidden  = auth.CodeTopicForbidden
	CodeLoopbackOnly    = auth.CodeLoopbackOnly
	CodeOriginForbidden = auth.CodeOriginForbidden
	// CodeTopicReserved: the topic belongs to another face (a Mercure hub
	// topic on /events, a chat answer on /publish...): see Namespace (403).
	CodeTopicReserved = "topic_reserved"
	// CodeHostForbidden: the request's Host is not one Herald answers to
	// (--allowed-hosts; DNS rebinding guard) (403).
	CodeHostForbidden = "host_forbidden"
	// CodeNotOwner: the request acts on a resource another client created
	// (cancelling someone else's chat generation) (403).
	CodeNotOwner = "not_owner"
	// CodeAdminTokenMissing and CodeAdminTokenInvalid: an admin endpoint
	// without, or with a wrong, --admin-token (401, 403).
	CodeAdminTokenMissing = "admin_token_missing"
	CodeAdminTokenInvalid = "admin_token_invalid"
	// CodeRateLimited: over --publish-rate (429).
	CodeRateLimited = "rate_limited"
	// CodeTooManyConnections: over a concurrency limit (429, 503).
	CodeTooManyConnections = "too_many_connections"
	// CodeTooLarge: a body or value over its limit (413).
	CodeTooLarge = "too_large"
	// CodeBodyTimeout: the body did not arrive within --read-body-timeout
	// (408).
	CodeBodyTimeout = "body_timeout"
	// CodeBadPath: a request that changes something named a path with an
	// empty, "." or ".." segment (400).
	CodeBadPath = "bad_path"
)

// Error is Herald's one refusal type: every face returns it and Write
// renders it the same way everywhere, as {"error": Msg, "code": Code} with
// Status (and Retry-After when RetryAfter is set). The message never holds
// a credential.
type Error struct {
	// Status is the HTTP status (4xx refusals, 5xx failures).
	Status int
	// Code is the stable machine-readable reason; may be empty.
	Code string
	// Msg is for humans.
	Msg string
	// RetryAfter, if positive, is sent as Retry-After (seconds).
	RetryAfter int
	// Reason labels the refusal in herald_requests_rejected_total; empty
	// derives it from Status (see MetricReason).
	Reason string
	// Err is the cause, if any; never shown to clients.
	Err error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether retrying may succeed: a 5xx, 408 or 429.
func (e *Error) Retryable() bool {
	return e.Status >= 500 || e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests
}

// MetricReason returns the label the refusal is counted under: Reason,
// or one derived from Status; "" for answers that are not refusals (404,
// 405, and 5xx without a Reason).
func (e *Error) MetricReason() string {
	if e.Reason != "" {
		return e.Reason
	}
	switch {
	case e.Status == http.StatusNotFound, e.Status == http.StatusMethodNotAllowed, e.Status >= 500, e.Status < 400:
		return ""
	case e.Status == http.StatusUnauthorized:
		return "unauthorized"
	case e.Status == http.StatusForbidden:
		return "forbidden"
	case e.Status == http.StatusTooManyRequests:
		return "limit"
	case e.Status == http.StatusRequestEntityTooLarge:
		return "too_large"
	}
	return "bad_request"
}

// Errorf returns an Error with a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Msg: fmt.Sprintf(format, args...)}
}

// BadRequest returns a 400 Error with a formatted message.
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

// TooLarge returns the 413 Error for a body over limit bytes.
func TooLarge(limit int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Msg: fmt.Sprintf("request body over %d bytes", limit)}
}

// MethodNotAllowed returns the 405 Error naming the methods a path takes
// (set the Allow header too: see WriteMethodNotAllowed).
func MethodNotAllowed(method, allow string) *Error {
	return Errorf(http.StatusMethodNotAllowed, "", "method not allowed: use %s (got %s)", allow, clip(method))
}

// As returns err as an *Error: the one in its chain, a 413 for an
// *http.MaxBytesError, a 401 or 403 for an *auth.Error, and otherwise a
// 500 that does not show err to the client.
func As(err error) *Error {
	var e *Error
	var ae *auth.Error
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return &Error{Status: http.StatusInternalServerError, Msg: "internal error"}
	case errors.As(err, &e):
		return e
	case errors.As(err, &ae):
		return &Error{Status: ae.Status, Code: ae.Code, Msg: ae.Msg, Err: ae}
	case errors.As(err, &mbe):
		return TooLarge(mbe.Limit)
	}
	return &Error{Status: http.StatusInternalServerError, Msg: "internal error", Err: err}
}

// Write answers r with err (see As): its status, Retry-After, and the JSON
// body {"error": ..., "code": ...}. A refusal is counted in the metrics of
// the policy that admitted r. Every face answers errors through it.
func Write(w http.ResponseWriter, r *http.Request, err error) {
	e := As(err)
	if r != nil {
		if id := From(r.Context()); id != nil {
			id.answered.Store(true)
			if reason := e.MetricReason(); reason != "" && id.p != nil && id.p.o.Rejected != nil {
				id.p.o.Rejected(reason)
			}
		}
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	httpjson.ErrorCode(w, e.Status, e.Code, e.Msg)
}

// WriteMethodNotAllowed answers 405 with an Allow header.
func WriteMethodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	Write(w, r, MethodNotAllowed(r.Method, allow))
}
