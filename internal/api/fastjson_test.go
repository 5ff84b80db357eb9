package api

import (
	"bytes"
	"reflect"
	"testing"
	"unicode/utf8"
)

var fastSeeds = []string{
	`[{"topic":"a","data":"x"}]`,
	`[ {"topic" : "a" , "data" : "x y" , "event":"e", "retain":true, "final":false, "private":true} , {"topics":["a","b"],"data":"z"} ]`,
	`{"topic":"a","data":"hello"}`,
	`{"topics":[],"data":""}`,
	`[]`,
	`[{}]`,
	`{}`,
	// encoding/json's territory: the fast path must decline.
	`[{"topic":"a","data":{"k":1}}]`,
	`[{"topic":"a","data":"x\ny"}]`,
	`[{"Topic":"a"}]`,
	`[{"topic":"a","topic":"b"}]`,
	`[{"topic":"a","extra":1}]`,
	`[{"topic":null}]`,
	`[{"topic":"a","retain":1}]`,
	`[{"topic":"a"},]`,
	`[{"topic":"a"}] x`,
	`{"topic":"a"}{"topic":"b"}`,
	`[{"topic":"a","data":42}]`,
	`[{"topic":"\u0061"}]`,
	"[{\"topic\":\"a\tb\"}]",
}

// TestFastJSONMatchesEncodingJSON: what the fast path accepts, encoding/json
// accepts too, with the same result.
func TestFastJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range fastSeeds {
		checkFast(t, []byte(s))
	}
	// The common shapes take the fast path.
	for _, s := range fastSeeds[:7] {
		b := []byte(s)
		var ok bool
		if b[0] == '[' {
			_, ok = parseBatchFast(b)
		} else {
			ok = parseInputFast(b, &Input{})
		}
		if !ok {
			t.Errorf("fast path declined %s", s)
		}
	}
}

func FuzzFastJSON(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		b = bytes.TrimSpace(b)
		if len(b) == 0 || !utf8.Valid(b) {
			return
		}
		checkFast(t, b)
	})
}

func checkFast(t *testing.T, b []byte) {
	t.Helper()
	if b[0] == '[' {
		fast, ok := parseBatchFast(b)
		if !ok {
			return
		}
		var slow []Input
		if err := decodeStrict(b, &slow); err != nil {
			t.Fatalf("%s: fast path accepted what encoding/json refuses: %v", b, err)
		}
		if !reflect.DeepEqual(fast, slow) && !(len(fast) == 0 && len(slow) == 0) {
			t.Fatalf("%s:\nfast %#v\nslow %#v", b, fast, slow)
		}
		return
	}
	var fast, slow Input
	if !parseInputFast(b, &fast) {
		return
	}
	if err := decodeStrict(b, &slow); err != nil {
		t.Fatalf("%s: fast path accepted what encoding/json refuses: %v", b, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%s:\nfast %#v\nslow %#v", b, fast, slow)
	}
}
