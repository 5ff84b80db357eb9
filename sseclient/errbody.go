package sseclient

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxErrorBody bounds what ErrorMessage reads of an error answer's body.
const MaxErrorBody = 4 << 10

// ErrorMessage reads the explanation of an error answer from resp's body
// (at most MaxErrorBody bytes of it): the "error" member of a JSON object,
// as Herald sends, or else the start of a text body with its white space
// trimmed, or else "". Herald's Go clients (this one and package client)
// explain errors with it.
func ErrorMessage(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBody))
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	isJSON := mt == "application/json" || strings.HasSuffix(mt, "+json")
	if isJSON {
		var body struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &body) == nil && body.Error != "" {
			return body.Error
		}
	}
	if mt != "" && !isJSON && !strings.HasPrefix(mt, "text/") {
		return ""
	}
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
	if len(s) > 512 {
		i := 512
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i] + "…"
	}
	return s
}

// ParseRetryAfter parses a Retry-After header value, seconds or an HTTP
// date, as a duration from now; zero when it is absent or invalid.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
