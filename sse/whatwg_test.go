package sse

import (
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/ssecases"
)

// whatwgCasesFile holds the decoder cases of decodeCases that a browser can
// be given too (those without a size limit), with what a browser's
// EventSource must make of each, for the tests of other packages (through
// internal/ssecases): the Go client and `herald subscribe` against the same
// cases, and a real Chromium (sseclient's chromium_test.go) as the
// reference. go test -update rewrites it.
const whatwgCasesFile = "../internal/ssecases/cases.json"

func TestWHATWGCasesFile(t *testing.T) {
	var cases []ssecases.Case
	for _, tc := range decodeCases {
		if tc.max != 0 {
			continue
		}
		d := NewDecoder(strings.NewReader(tc.in))
		c := ssecases.Case{Name: tc.name, In: strconv.Quote(tc.in), Events: []ssecases.Event{}}
		for {
			ev, err := d.Next()
			if err != nil {
				break
			}
			c.Events = append(c.Events, ssecases.Event{Type: ev.Type, Data: ev.Data, LastEventID: ev.ID})
		}
		c.LastEventID = d.LastEventID()
		if d.HasRetry() {
			ms := d.Retry().Milliseconds()
			c.RetryMS = &ms
		}
		cases = append(cases, c)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cases); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(whatwgCasesFile, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	old, err := os.ReadFile(whatwgCasesFile)
	if err != nil || !bytes.Equal(old, b.Bytes()) {
		t.Fatalf("%s is missing or out of date (%v): run go test ./sse -run WHATWGCasesFile -update", whatwgCasesFile, err)
	}
}
