package streams_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAppendSizeLimits: an append over --ds-max-body is 413 on every
// broker; an append under it that the broker itself cannot take (NATS's
// max_payload, 1 MiB by default, to which --ds-max-body is capped there) is
// 413 too, with a JSON body that says why, not a 503 that invites a retry;
// on the other brokers it is stored.
// Either way the stream goes on working and holds exactly what was
// acknowledged.
func TestAppendSizeLimits(t *testing.T) {
	for _, bc := range brokers() {
		t.Run(bc.name, func(t *testing.T) {
			t.Parallel()
			n := startHerald(t, append(bc.flags(t), "--ds-max-body", "2MiB")...)
			url := n.URL + "/v1/stream/limits/" + bc.name
			do := func(method, body string) (int, string) {
				t.Helper()
				req, err := http.NewRequest(method, url, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/octet-stream")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				return resp.StatusCode, string(b)
			}
			if st, body := do("PUT", ""); st != http.StatusCreated {
				t.Fatalf("create: %d %s", st, body)
			}
			want := new(bytes.Buffer)

			if st, body := do("POST", strings.Repeat("x", 3<<20)); st != http.StatusRequestEntityTooLarge || !json.Valid([]byte(body)) {
				t.Fatalf("3 MiB append over --ds-max-body 2MiB: %d %s", st, body)
			}

			big := strings.Repeat("y", 1536<<10) // 1.5 MiB: over NATS's max_payload
			st, body := do("POST", big)
			switch {
			case bc.name == "nats":
				// --ds-max-body is capped to fit max_payload on NATS.
				if st != http.StatusRequestEntityTooLarge || !json.Valid([]byte(body)) || !strings.Contains(body, "983040") {
					t.Fatalf("1.5 MiB append on NATS: %d %s, want 413 naming the capped limit", st, body)
				}
			case st != http.StatusNoContent:
				t.Fatalf("1.5 MiB append: %d %s", st, body)
			default:
				want.WriteString(big)
			}

			if st, body := do("POST", "after"); st != http.StatusNoContent {
				t.Fatalf("append after the refused ones: %d %s", st, body)
			}
			want.WriteString("after")
			st, got := do("GET", "")
			if st != http.StatusOK || got != want.String() {
				t.Fatalf("read: %d, %d bytes, want %d bytes", st, len(got), want.Len())
			}
		})
	}
}
