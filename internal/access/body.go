package access

import (
	"errors"
	"io"
	"net/http"
)

// ReadBody reads r's body, at most limit bytes. A request whose
// Content-Length says it is over the limit gets a 413 Error before a byte
// of it is read (so that a slow client cannot turn it into a 408); a body
// that turns out longer gets the same 413. A body that does not arrive in
// time gets the 408 Error of the server's body deadline; any other read
// failure is a 400. Every face that takes a body reads it here.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, TooLarge(limit)
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		var e *Error
		switch {
		case errors.As(err, &mbe):
			return nil, TooLarge(mbe.Limit)
		case errors.As(err, &e):
			return nil, e
		}
		return nil, &Error{Status: http.StatusBadRequest, Msg: "cannot read the request body: " + err.Error(), Err: err}
	}
	return b, nil
}
