package chat_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/llm"
	"github.com/heraldpush/herald/internal/llm/openai"
	"github.com/heraldpush/herald/internal/llm/openaitest"
	"github.com/heraldpush/herald/sse"
)

const (
	benchTokens = 100
	benchPace   = 200 * time.Microsecond
)

// BenchmarkTokenRelay measures the latency of a token from the moment the
// fake upstream writes it to the moment a client of Herald's stream has
// decoded it (p50/p99 in µs, per token), one generation of 100 tokens per
// iteration. "direct" is the baseline: the same upstream read by the
// provider alone, without Herald; the difference is what Herald adds
// (storing the token in history, fan-out, SSE encoding, HTTP).
func BenchmarkTokenRelay(b *testing.B) {
	stamp := func(int) string { return strconv.FormatInt(time.Now().UnixNano(), 10) + " " }
	latency := func(h *hdrhistogram.Histogram, tok string) {
		ns, err := strconv.ParseInt(strings.TrimSpace(tok), 10, 64)
		if err != nil {
			b.Fatalf("token %q is not a timestamp", tok)
		}
		h.RecordValue(max(time.Now().UnixNano()-ns, 0) / 1000)
	}
	report := func(b *testing.B, h *hdrhistogram.Histogram) {
		b.ReportMetric(float64(h.ValueAtQuantile(50)), "p50-µs/token")
		b.ReportMetric(float64(h.ValueAtQuantile(99)), "p99-µs/token")
		b.ReportMetric(0, "ns/op")
	}

	b.Run("herald", func(b *testing.B) {
		connected := make(chan struct{}, 1)
		up := openaitest.New(b, openaitest.Script{N: benchTokens, Token: stamp, Delay: benchPace, Ready: func() { <-connected }})
		srv := start(b, up, func(c *config.Server) { c.Chat.MaxConcurrentPerClient = 1000 })
		h := hdrhistogram.New(1, 10_000_000, 3)
		for b.Loop() {
			id := ask(b, srv, "q")
			resp, err := http.Get(srv.URL + "/chat/stream/" + id)
			if err != nil {
				b.Fatal(err)
			}
			connected <- struct{}{}
			n := 0
			for ev, err := range sse.Read(resp.Body) {
				if err != nil {
					b.Fatal(err)
				}
				if ev.Type == "token" {
					latency(h, ev.Data)
					n++
				}
			}
			resp.Body.Close()
			if n != benchTokens {
				b.Fatalf("%d tokens, want %d", n, benchTokens)
			}
		}
		report(b, h)
	})

	b.Run("direct", func(b *testing.B) {
		up := openaitest.New(b, openaitest.Script{N: benchTokens, Token: stamp, Delay: benchPace})
		p, err := openai.New(openai.Options{BaseURL: up.BaseURL(), Model: "fake-model"})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		h := hdrhistogram.New(1, 10_000_000, 3)
		req := llm.Request{Messages: []llm.Message{{Role: "user", Content: "q"}}}
		for b.Loop() {
			for c, err := range p.Stream(context.Background(), req) {
				if err != nil && !errors.Is(err, io.EOF) {
					b.Fatal(err)
				}
				if c.Text != "" {
					latency(h, c.Text)
				}
			}
		}
		report(b, h)
	})
}
