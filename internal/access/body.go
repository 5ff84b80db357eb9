package access

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
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

// ReadForm returns r's form: the values of an
// application/x-www-form-urlencoded body of a POST, PUT or PATCH (read with
// ReadBody, at most limit bytes) followed by those of the query, as
// http.Request.ParseForm has them. Another body is not read.
func ReadForm(w http.ResponseWriter, r *http.Request, limit int64) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, BadRequest("malformed query: %v", err)
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return q, nil
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return q, nil
	}
	body, err := ReadBody(w, r, limit)
	if err != nil {
		return nil, err
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, BadRequest("malformed form: %v", err)
	}
	for k, vs := range q {
		vals[k] = append(vals[k], vs...)
	}
	return vals, nil
}
