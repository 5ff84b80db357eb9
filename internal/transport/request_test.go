package transport_test

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/transport"
)

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		name, url, header string
		max               int
		topics            []string
		lastID            string
		status            int
	}{
		{"topics", "/events?topic=a&topic=b", "", 0, []string{"a", "b"}, "", 0},
		{"header", "/events?topic=a", "e-1", 0, []string{"a"}, "e-1", 0},
		{"query", "/events?topic=a&lastEventID=e-2", "", 0, []string{"a"}, "e-2", 0},
		{"header wins", "/events?topic=a&lastEventID=e-2", "e-1", 0, []string{"a"}, "e-1", 0},
		{"no topic", "/events", "", 0, nil, "", 400},
		{"too many", "/events?topic=a&topic=b&topic=c", "", 2, nil, "", 400},
		{"at the limit", "/events?topic=a&topic=b", "", 2, []string{"a", "b"}, "", 0},
		{"bad topic", "/events?topic=%00", "", 0, nil, "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.url, nil)
			if tc.header != "" {
				r.Header.Set("Last-Event-ID", tc.header)
			}
			req, err := transport.ParseRequest(r, tc.max)
			var he *access.Error
			if tc.status != 0 {
				if !errors.As(err, &he) || he.Status != tc.status {
					t.Fatalf("err %v, want status %d", err, tc.status)
				}
				return
			}
			if err != nil || strings.Join(req.Topics, ",") != strings.Join(tc.topics, ",") || req.LastEventID != tc.lastID {
				t.Fatalf("got %+v, %v", req, err)
			}
		})
	}
}
