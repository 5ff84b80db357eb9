package redis

import (
	"slices"
	"strings"
	"testing"
)

// FuzzDecodeBlobs: decodeBlobs, which reads the batches of the live
// stream, returns an error (never a panic, never more messages than bytes)
// for any input, and the messages encodeBlobs framed (here the input cut
// in three).
func FuzzDecodeBlobs(f *testing.F) {
	f.Add("")
	f.Add("abc")
	f.Add(encodeBlobs([]string{"a", strings.Repeat("d", 300), ""}))
	f.Add("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")
	f.Add("\x05ab")
	f.Fuzz(func(t *testing.T, p string) {
		if blobs, err := decodeBlobs(p); err == nil && len(blobs) > len(p) {
			t.Fatalf("decodeBlobs = %d messages from %d bytes", len(blobs), len(p))
		}
		want := []string{p[:len(p)/3], p[len(p)/3 : 2*len(p)/3], p[2*len(p)/3:]}
		got, err := decodeBlobs(encodeBlobs(want))
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("decodeBlobs(encodeBlobs(%q)) = %q, %v", want, got, err)
		}
	})
}

// TestDecodeBlobsRefuses: a truncated or malformed batch is an error.
func TestDecodeBlobsRefuses(t *testing.T) {
	good := encodeBlobs([]string{"one", "two"})
	for name, p := range map[string]string{
		"truncated":       good[:len(good)-1],
		"length past end": "\x05ab",
		"huge length":     "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
		"bad varint":      "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
		"lone varint":     "\x80",
	} {
		if blobs, err := decodeBlobs(p); err == nil {
			t.Errorf("%s: decodeBlobs = %d messages, no error", name, len(blobs))
		}
	}
}
