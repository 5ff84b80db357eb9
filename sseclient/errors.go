package sseclient

import (
	"fmt"
	"net/http"
	"time"
)

// StatusError is an HTTP answer other than 200 and 204 to a stream request.
// Events yields it when the status is not retried; OnState sees it with the
// others (408, 429 and 5xx), which the client retries.
type StatusError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Message is the server's explanation: the "error" member of a JSON
	// body (Herald's form), else the start of a text body, else empty.
	Message string
	// RetryAfter is the Retry-After header of a 429 or 503 answer, zero if
	// it had none. The client waits at least that long before retrying.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("sseclient: server answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Temporary reports whether the client retries after this answer: 408, 429
// and 5xx.
func (e *StatusError) Temporary() bool {
	return e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

func newStatusError(resp *http.Response) *StatusError {
	e := &StatusError{StatusCode: resp.StatusCode, Message: ErrorMessage(resp)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		e.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return e
}
