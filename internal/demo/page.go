package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"time"

	webdemo "github.com/heraldpush/herald/web/demo"
)

// PagePath is where the demo page is served; its other files are under
// AssetPrefix.
const (
	PagePath    = "/"
	AssetPrefix = "/demo/"
)

// pageCSP allows the page its own scripts, styles and fetches, nothing else.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// registerPage serves index.html at / and every file of the page under
// /demo/, each with an ETag so that browsers revalidate cheaply.
func registerPage(mux mux) error {
	files := webdemo.Files()
	names, err := fs.Glob(files, "*")
	if err != nil {
		return fmt.Errorf("demo: list page files: %w", err)
	}
	for _, name := range names {
		body, err := fs.ReadFile(files, name)
		if err != nil {
			return fmt.Errorf("demo: read %s: %w", name, err)
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			continue // Go sources of the embedding package and the like
		}
		h := serveFile(name, ct, body)
		if name == "index.html" {
			mux.Handle("GET /{$}", h)
			continue
		}
		mux.Handle("GET "+AssetPrefix+name, h)
	}
	return nil
}

func serveFile(name, contentType string, body []byte) http.Handler {
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		h.Set("X-Content-Type-Options", "nosniff")
		if contentType == contentTypes[".html"] {
			h.Set("Content-Security-Policy", pageCSP)
			h.Set("Referrer-Policy", "no-referrer")
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
	})
}
