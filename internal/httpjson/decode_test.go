package httpjson

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeStrict(t *testing.T) {
	type in struct {
		Topic string          `json:"topic"`
		Data  json.RawMessage `json:"data"`
	}
	for _, tc := range []struct {
		body, err string
	}{
		{`{"topic":"a","data":{"x":1}}`, ""},
		{`{"topic":"a","topic":"b"}`, `"topic" given twice`},
		{`{"topic":"a","\u0074opic":"b"}`, `"topic" given twice`},
		{`{"topic":"a","data":{"x":1,"x":2}}`, `"x" given twice`},
		{`{"topic":"a","data":[{"x":1},{"x":2}]}`, ""},
		{`{"topic":"a","data":{"x":{"y":1},"y":2}}`, ""},
		{`{"topic":"a","data":"topic"}`, ""},
		{`{"topic":"a","other":1}`, "unknown field"},
		{`{"topic":"a"} {}`, "trailing data"},
		{`{"topic":"a"}x`, "trailing data"},
		{`{"topic":`, "malformed JSON"},
		{`{"data":` + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + `}`, "deeper"},
	} {
		var v in
		err := DecodeStrict([]byte(tc.body), &v)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.body, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want an error with %q", tc.body, err, tc.err)
		}
	}
}

// FuzzDuplicateKeys builds an object with two members and checks that
// CheckDuplicateKeys reports it exactly when the names are equal once
// unescaped ("a" and "\u0061" are one name), at any depth.
func FuzzDuplicateKeys(f *testing.F) {
	f.Add("topic", "topic", 0)
	f.Add("a", `\u0061`, 1)
	f.Add("a", "b", 2)
	f.Add(`\"`, `"`, 0)
	f.Fuzz(func(t *testing.T, k1, k2 string, depth int) {
		depth = min(max(depth, 0), 5)
		obj := `{"` + k1 + `":1,"` + k2 + `":[1,{"z":2}]}`
		var n1, n2 string
		if json.Unmarshal([]byte(`"`+k1+`"`), &n1) != nil || json.Unmarshal([]byte(`"`+k2+`"`), &n2) != nil {
			return // not valid JSON strings
		}
		body := strings.Repeat(`{"w":[`, depth) + obj + strings.Repeat(`]}`, depth)
		if !json.Valid([]byte(body)) {
			return
		}
		err := CheckDuplicateKeys([]byte(body))
		if (err != nil) != (n1 == n2) {
			t.Fatalf("%s: CheckDuplicateKeys = %v; names %q and %q", body, err, n1, n2)
		}
	})
}

// FuzzCheckDuplicateKeys: any input, valid or not, is scanned without a
// panic, and a valid body without repeated names passes.
func FuzzCheckDuplicateKeys(f *testing.F) {
	for _, s := range []string{`{}`, `[{"a":1},{"a":1}]`, `{"a":{"a":{"a":1}}}`, `{"a":1,"a":2}`, `{`, `"x"`, `[[[`, `{"a" 1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := CheckDuplicateKeys(b)
		if err == nil || !json.Valid(b) {
			return
		}
		// Re-encoding through a map keeps one of each name: that must pass.
		var v any
		if json.Unmarshal(b, &v) != nil {
			return
		}
		again, _ := json.Marshal(v)
		if err := CheckDuplicateKeys(again); err != nil && !strings.Contains(err.Error(), "deeper") {
			t.Fatalf("%s: re-encoded %s still reported: %v", b, again, err)
		}
	})
}
