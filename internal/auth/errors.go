package auth

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes: the "code" of a refused request's JSON body. They are stable;
// clients may switch on them.
const (
	// CodeTokenMissing: the request needs a token and carries none (401).
	CodeTokenMissing = "token_missing"
	// CodeTokenInvalid: the token is malformed, forged, signed with another
	// key or algorithm, or fails an audience, issuer or not-before check (401).
	CodeTokenInvalid = "token_invalid"
	// CodeTokenExpired: the token was valid but has expired (401).
	CodeTokenExpired = "token_expired"
	// CodeTopicForbidden: the token is valid but does not cover a topic (403).
	CodeTopicForbidden = "topic_forbidden"
	// CodeLoopbackOnly: development mode (no key configured) lets only
	// loopback clients publish (403).
	CodeLoopbackOnly = "loopback_only"
	// CodeOriginForbidden: a cookie-authenticated request came from an
	// origin that is not allowed (403).
	CodeOriginForbidden = "origin_forbidden"
)

// Error is a refusal: the HTTP status to answer with, a stable code and a
// message for humans. The message never contains the token.
type Error struct {
	Status int
	Code   string
	Msg    string
	Err    error // the underlying cause, if any (not shown to clients)
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Sentinel errors, matched with errors.Is against an *Error's cause.
var (
	ErrNoToken      = errors.New("auth: no token")
	ErrInvalidToken = errors.New("auth: invalid token")
	ErrExpiredToken = errors.New("auth: token expired")
	ErrForbidden    = errors.New("auth: forbidden")
)

func unauthorized(code, msg string, cause error) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: code, Msg: msg, Err: cause}
}

func errNoToken() *Error {
	return unauthorized(CodeTokenMissing, "unauthorized: this request needs a token (Authorization: Bearer <jwt>, cookie heraldAuthorization, or ?authorization=<jwt>)", ErrNoToken)
}

func errInvalid(reason string, cause error) *Error {
	return unauthorized(CodeTokenInvalid, "unauthorized: invalid token: "+reason, errors.Join(ErrInvalidToken, cause))
}

// Forbidden returns the 403 error for a token that does not cover topic for
// the given action ("publish" or "subscribe").
func Forbidden(action, topic string) *Error {
	return &Error{Status: http.StatusForbidden, Code: CodeTopicForbidden,
		Msg: fmt.Sprintf("forbidden: the token does not allow to %s to topic %q", action, topic), Err: ErrForbidden}
}

// TokenRequired returns the 401 error for a request that needs a token and
// carries none.
func TokenRequired() *Error { return errNoToken() }

// ErrExpired returns the 401 error for a token that has expired.
func ErrExpired() *Error {
	return unauthorized(CodeTokenExpired, "unauthorized: token expired: get a new one", ErrExpiredToken)
}
