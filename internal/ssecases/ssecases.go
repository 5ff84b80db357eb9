// Package ssecases holds the WHATWG event stream cases of the sse decoder's
// tests (sse/decode_test.go), with what a browser's EventSource must make of
// each, for the tests of the code that reads streams on top of it: the Go
// client, `herald subscribe`, and the comparison with a real Chromium. The
// sse tests write cases.json (go test ./sse -update) and check it is up to
// date.
package ssecases

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strconv"
)

//go:embed cases.json
var casesJSON []byte

// Case is a stream and what an EventSource makes of it.
type Case struct {
	Name string `json:"name"`
	// In is the stream, Go-quoted; Stream returns its bytes.
	In string `json:"in"`
	// Events are the dispatched events, as a MessageEvent shows them.
	Events []Event `json:"events"`
	// LastEventID is the last event ID string at the end of the stream:
	// what a reconnection sends as Last-Event-ID (none when empty).
	LastEventID string `json:"lastEventId"`
	// RetryMS is the reconnection time the stream sets, if it sets one.
	RetryMS *int64 `json:"retryMS,omitempty"`
}

// Event is a dispatched event.
type Event struct {
	Type        string `json:"type"`
	Data        string `json:"data"`
	LastEventID string `json:"lastEventId"`
}

// Stream returns the bytes of the case's stream.
func (c *Case) Stream() []byte {
	s, err := strconv.Unquote(c.In)
	if err != nil {
		panic(fmt.Sprintf("ssecases: case %q: %v", c.Name, err))
	}
	return []byte(s)
}

// Cases returns the cases, in the order of the decoder's table.
func Cases() []Case {
	var cases []Case
	if err := json.Unmarshal(casesJSON, &cases); err != nil {
		panic(fmt.Sprintf("ssecases: cases.json: %v", err))
	}
	return cases
}
