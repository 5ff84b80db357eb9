package sse

import (
	"io"
	"strings"
	"testing"
	"time"
)

func BenchmarkEncode(b *testing.B) {
	for _, tc := range []struct {
		name string
		ev   Event
	}{
		{"small", Event{ID: "k3j5h2l1m0-123456", Type: "update", Data: `{"price":101.5,"sym":"ABC"}`}},
		{"multiline-1KiB", Event{ID: "k3j5h2l1m0-123456", Data: strings.Repeat(strings.Repeat("x", 63)+"\n", 16)}},
		{"64KiB", Event{ID: "k3j5h2l1m0-123456", Type: "blob", Data: strings.Repeat("y", 64<<10)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			buf := make([]byte, 0, 128<<10)
			b.SetBytes(int64(len(tc.ev.Data)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = tc.ev.AppendTo(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(buf)), "wire-bytes/event")
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	var stream []byte
	const events = 1000
	for i := range events {
		ev := Event{ID: "k3j5h2l1m0-" + strings.Repeat("1", i%7+1), Type: "update", Data: `{"price":101.5,"sym":"ABC"}` + "\nsecond line", Retry: time.Second}
		stream, _ = ev.AppendTo(stream)
		stream = AppendComment(stream, "keep-alive")
	}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	r := strings.NewReader("")
	for b.Loop() {
		r.Reset(string(stream))
		d := NewDecoder(r)
		n := 0
		for {
			_, err := d.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != events {
			b.Fatalf("decoded %d events", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}
