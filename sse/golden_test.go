package sse

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files' output sections")

// A golden file is a txtar archive: a comment, then sections that start
// with a "-- name --" line. Decode files have an "input" stream and the
// "events" (one JSON object per line) and "state" it decodes to; encode
// files have "events" to encode and the "wire" form. go test -update
// rewrites the output sections.

type section struct{ name, body string }

func parseArchive(b []byte) (comment string, secs []section) {
	lines := strings.SplitAfter(string(b), "\n")
	cur := -1
	for _, l := range lines {
		if n, ok := strings.CutPrefix(strings.TrimRight(l, "\n"), "-- "); ok && strings.HasSuffix(n, " --") {
			secs = append(secs, section{name: strings.TrimSuffix(n, " --")})
			cur = len(secs) - 1
			continue
		}
		if cur < 0 {
			comment += l
		} else {
			secs[cur].body += l
		}
	}
	return comment, secs
}

func formatArchive(comment string, secs []section) []byte {
	var b strings.Builder
	b.WriteString(comment)
	for _, s := range secs {
		b.WriteString("-- " + s.name + " --\n" + s.body)
	}
	return []byte(b.String())
}

func get(secs []section, name string) *section {
	for i := range secs {
		if secs[i].name == name {
			return &secs[i]
		}
	}
	return nil
}

type goldenEvent struct {
	ID      string `json:"id,omitempty"`
	HasID   bool   `json:"hasID,omitempty"`
	Type    string `json:"type,omitempty"`
	Data    string `json:"data"`
	RetryMS int64  `json:"retryMS,omitempty"`
}

func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/golden/*.txtar")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			comment, secs := parseArchive(raw)
			var want, got *section
			var out string
			if in := get(secs, "input"); in != nil {
				d := decodeAll(strings.NewReader(in.body), 0)
				var b strings.Builder
				for _, ev := range d.Events {
					j, _ := json.Marshal(goldenEvent{ID: ev.ID, HasID: ev.HasID, Type: ev.Type, Data: ev.Data})
					b.Write(append(j, '\n'))
				}
				out = b.String()
				want = get(secs, "events")
				st, _ := json.Marshal(map[string]any{"lastEventID": d.LastID, "retryMS": d.Retry.Milliseconds(), "err": errString(d.Err)})
				if s := get(secs, "state"); s != nil {
					if *update {
						s.body = string(st) + "\n"
					} else if s.body != string(st)+"\n" {
						t.Errorf("state:\n got %s\nwant %s", st, s.body)
					}
				}
			} else {
				evs := get(secs, "events")
				var b bytes.Buffer
				for _, line := range strings.Split(strings.TrimSpace(evs.body), "\n") {
					var ge goldenEvent
					if err := json.Unmarshal([]byte(line), &ge); err != nil {
						t.Fatalf("events line %q: %v", line, err)
					}
					ev := Event{ID: ge.ID, HasID: ge.HasID, Type: ge.Type, Data: ge.Data, Retry: time.Duration(ge.RetryMS) * time.Millisecond}
					if _, err := ev.WriteTo(&b); err != nil {
						b.WriteString("ERROR: " + err.Error() + "\n")
					}
				}
				out = b.String()
				want = get(secs, "wire")
			}
			got = &section{body: out}
			if want == nil {
				t.Fatal("no output section")
			}
			if *update {
				want.body = got.body
				if err := os.WriteFile(file, formatArchive(comment, secs), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got.body != want.body {
				t.Errorf("%s:\n got:\n%s\nwant:\n%s", want.name, got.body, want.body)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
