package sseclient

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestErrorMessage(t *testing.T) {
	long := strings.Repeat("é", 400) // 800 bytes
	tests := []struct {
		name, ctype, body, want string
	}{
		{"Herald's JSON", "application/json", `{"error":"missing topic"}` + "\n", "missing topic"},
		{"problem+json with error", "application/problem+json", `{"error":"x"}`, "x"},
		{"JSON without error", "application/json", `{"message":"x"}`, `{"message":"x"}`},
		{"broken JSON", "application/json; charset=utf-8", `{"error":`, `{"error":`},
		{"text", "text/plain; charset=utf-8", "  Bad Gateway\r\n", "Bad Gateway"},
		{"no type", "", "oops", "oops"},
		{"binary", "application/octet-stream", "\x00\x01", ""},
		{"invalid UTF-8", "text/plain", "a\xffb", "a\uFFFDb"},
		{"long text is cut on a rune boundary", "text/plain", long, strings.Repeat("é", 256) + "…"},
		{"only the first 4 KiB are read", "text/plain", strings.Repeat(" ", MaxErrorBody) + "late", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{Header: http.Header{"Content-Type": {tt.ctype}}, Body: io.NopCloser(strings.NewReader(tt.body))}
			if got := ErrorMessage(resp); got != tt.want {
				t.Errorf("Message = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{" 120 ", 2 * time.Minute},
		{"-1", 0},
		{"1.5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := ParseRetryAfter(tt.v, now); got != tt.want {
			t.Errorf("RetryAfter(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}
