package codec

import (
	"bufio"
	"encoding/hex"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

func TestRoundTrip(t *testing.T) {
	for _, m := range []*pubsub.Message{
		{Topics: []string{"a"}},
		{Topics: []string{"a", "b c/é", ""}, Type: "update", Data: "x\x00y\nz", Retain: true},
		{Topics: []string{"f"}, Data: string([]byte{0xff, 0xfe}), Final: true, Private: true},
		{Topics: []string{"a"}, ID: "evt-1", Also: []string{"b", "c"}, Meta: map[string]string{"mercure.id": "urn:x", "mercure.retry": "3000"}, Data: "d"},
	} {
		got, err := Decode(Encode(nil, m))
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)): %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip: got %+v, want %+v", got, m)
		}
	}
}

// TestDecodeV1 decodes messages encoded by the release before format 2
// (testdata/v1.hex, made with its codec): they read as they were written,
// and a legacy metadata line moves to Meta.
func TestDecodeV1(t *testing.T) {
	want := []*pubsub.Message{
		{Topics: []string{"a"}, Data: "plain"},
		{Topics: []string{"a", "b c/é"}, Type: "update", Data: "x\x00y\nz", Retain: true},
		{Topics: []string{"f"}, Data: "bye", Final: true, Private: true},
		{Topics: []string{"/books/1", "/.well-known/mercure"}, Type: "u", Data: `{"t":1}`, Meta: map[string]string{"mercure.id": "urn:x", "mercure.retry": "3000"}},
	}
	f, err := os.Open("testdata/v1.hex")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	i := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != version1 {
			t.Fatalf("fixture %d is version %d", i, b[0])
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("message %d: got %+v, want %+v", i, got, want[i])
		}
		i++
	}
	if i != len(want) {
		t.Fatalf("%d fixtures, want %d", i, len(want))
	}
}

func TestLegacyMeta(t *testing.T) {
	tests := []struct {
		data, payload string
		meta          map[string]string
	}{
		{"plain", "plain", nil},
		{"", "", nil},
		{"\xffmercure:id=a\nhello\nworld", "hello\nworld", map[string]string{"mercure.id": "a"}},
		{"\xffmercure:id=a\n", "", map[string]string{"mercure.id": "a"}},
		{"\xffno newline", "\xffno newline", nil},
		{"\xff:id=a\nx", "\xff:id=a\nx", nil},
		{"\xffp:%zz\nx", "\xffp:%zz\nx", nil},
		{"x\xff", "x\xff", nil},
	}
	for _, tt := range tests {
		meta, payload := LegacyMeta(tt.data)
		if payload != tt.payload || !reflect.DeepEqual(meta, tt.meta) {
			t.Errorf("LegacyMeta(%q) = %v, %q; want %v, %q", tt.data, meta, payload, tt.meta, tt.payload)
		}
	}
}

func TestCorrupt(t *testing.T) {
	good := Encode(nil, &pubsub.Message{Topics: []string{"topic"}, Type: "t", Data: "d"})
	for name, b := range map[string][]byte{
		"empty":       nil,
		"version":     append([]byte{9}, good[1:]...),
		"short type":  good[:3],
		"topic count": {version, 0, 0, 0xff},
		"short topic": good[:6],
		"no extra":    good[:10],
		"meta count":  {version, 0, 0, 1, 1, 'a', 0, 0, 0xff},
		"huge varint": {version, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	} {
		if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Decode = %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(nil, &pubsub.Message{Topics: []string{"a", "b"}, Type: "x", Data: "data"}))
	f.Add(Encode(nil, &pubsub.Message{Topics: []string{"a"}, ID: "i", Also: []string{"z"}, Meta: map[string]string{"k": "v"}}))
	f.Add([]byte("\x01\x00\x00\x01\x01a\xffp:k=v\nd"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(Encode(nil, m))
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("re-encoding %+v: %+v, %v", m, again, err)
		}
	})
}
