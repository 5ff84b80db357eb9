package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/app"
	"github.com/heraldpush/herald/internal/apptest"
)

// BenchmarkPublishThroughMiddleware is one POST /publish through the
// app's whole handler (request log, CORS, header and path checks, limits,
// access hook, the publish API) without the network: what Herald itself
// spends per request, apart from net/http and the sockets.
func BenchmarkPublishThroughMiddleware(b *testing.B) {
	for _, logLevel := range []string{"error", "info"} {
		b.Run("log="+logLevel, func(b *testing.B) {
			cfg := apptest.Config()
			cfg.Demo.Enabled = false
			lvl := slog.LevelError
			if logLevel == "info" {
				lvl = slog.LevelInfo
			}
			log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: lvl}))
			a, err := app.New(context.Background(), cfg, log)
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			h := a.Handler()
			const body = "topic=bench&data=" + "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, "/publish", strings.NewReader(body))
				r.RemoteAddr = "127.0.0.1:40000"
				r.Host = "localhost:8080"
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("status %d: %s", w.Code, w.Body)
				}
			}
		})
	}
}
