package codec

import (
	"errors"
	"reflect"
	"testing"

	"github.com/heraldpush/herald/pubsub"
)

func TestRoundTrip(t *testing.T) {
	for _, m := range []*pubsub.Message{
		{Topics: []string{"a"}},
		{Topics: []string{"a", "b c/é", ""}, Type: "update", Data: "x\x00y\nz", Retain: true},
		{Topics: []string{"f"}, Data: string([]byte{0xff, 0xfe}), Final: true, Private: true},
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

func TestCorrupt(t *testing.T) {
	good := Encode(nil, &pubsub.Message{Topics: []string{"topic"}, Type: "t", Data: "d"})
	for name, b := range map[string][]byte{
		"empty":       nil,
		"version":     append([]byte{9}, good[1:]...),
		"short type":  good[:3],
		"topic count": {version, 0, 0, 0xff},
		"short topic": good[:6],
		"huge varint": {version, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	} {
		if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Decode = %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode(nil, &pubsub.Message{Topics: []string{"a", "b"}, Type: "x", Data: "data"}))
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
