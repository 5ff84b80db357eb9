package redis

import (
	"slices"
	"strings"
	"testing"

	"github.com/heraldpush/herald/pubsub"
	"github.com/heraldpush/herald/pubsub/internal/codec"
)

// FuzzDecodePlan: decodePlan, which reads the batches of the live stream,
// returns an error (never a panic) for any bytes, and the encoded messages
// for a plan that encodePlan wrote (here with the input as data, ID and
// topic).
func FuzzDecodePlan(f *testing.F) {
	for _, m := range [][]*pubsub.Message{
		{{Topics: []string{"a"}, Data: "x"}},
		{{Topics: []string{"a", "b"}, Data: strings.Repeat("d", 300), ID: "id", Retain: true}, {Topics: []string{"c"}, Final: true}},
	} {
		f.Add(encodePlan(m, true))
	}
	f.Add("\xdd\xff\xff\xff\xff")
	f.Add("\x91\x95\x00\x00\xa0\xdb\x00\x00\x00\x09ab\xa1a")
	f.Fuzz(func(t *testing.T, p string) {
		if msgs, err := decodePlan(p); err == nil && len(msgs) > len(p) {
			t.Fatalf("decodePlan = %d messages from %d bytes", len(msgs), len(p))
		}
		topic := p
		if topic == "" {
			topic = "t"
		}
		var msgs []*pubsub.Message
		var want []string
		for i := range 3 {
			m := &pubsub.Message{Topics: []string{topic, topic + "2"}, Data: strings.Repeat(p, i), ID: p, Retain: i == 0, Final: i == 2}
			msgs = append(msgs, m)
			want = append(want, string(codec.Encode(nil, m)))
		}
		got, err := decodePlan(encodePlan(msgs, true))
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("decodePlan(encodePlan(...)) = %d messages, %v; want %d", len(got), err, len(want))
		}
	})
}

// TestDecodePlanRefuses: a truncated or malformed plan is an error.
func TestDecodePlanRefuses(t *testing.T) {
	good := encodePlan([]*pubsub.Message{{Topics: []string{"a"}, Data: "x"}}, true)
	for name, p := range map[string]string{
		"empty":            "",
		"not an array":     "\xa1x",
		"truncated":        good[:len(good)-1],
		"trailing bytes":   good + "\x00",
		"too few fields":   "\x91\x93\x00\x00\xa0",
		"huge array":       "\xdd\xff\xff\xff\xff",
		"huge message":     "\x92\xdd\xa2\x8b\x04\xb5\x03",
		"string past end":  "\x91\x95\x00\x00\xa0\xdb\x00\x00\x00\x09ab\xa1a",
		"integer for blob": "\x91\x95\x00\x00\xa0\x05\xa1a",
	} {
		if msgs, err := decodePlan(p); err == nil {
			t.Errorf("%s: decodePlan = %d messages, no error", name, len(msgs))
		}
	}
}
