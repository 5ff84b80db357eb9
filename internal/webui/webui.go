// Package webui serves what Herald's pages share: the style sheet and the
// favicon (GET /ui/{file}, GET /favicon.ico), the header that links the
// pages a server serves, and the one handler every page file is served
// with (an ETag, no-cache, nosniff, and a strict Content-Security-Policy on
// HTML).
//
// A page's HTML holds the marker HeaderMarker where the header goes; the
// server renders it once, at start, with Site.Render. There is no template
// language and no build step: the files are plain HTML, CSS and JavaScript
// embedded in the binary (web/ui and each page's own package).
package webui

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/heraldpush/herald/internal/httpjson"
	"github.com/heraldpush/herald/web/ui"
)

// HeaderMarker is the comment a page's HTML holds where the common header
// goes.
const HeaderMarker = "<!-- herald:header -->"

// PageCSP is the Content-Security-Policy of every page: its own scripts,
// styles, images and connections (fetch, EventSource, WebSocket to the same
// origin), nothing inline, nothing from elsewhere.
const PageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Page is one of Herald's pages.
type Page int

// The four pages, in the order the header lists them.
const (
	Demo Page = iota
	Chat
	Hybrid
	Dashboard
)

// Path returns where the page is served.
func (p Page) Path() string {
	switch p {
	case Demo:
		return "/"
	case Chat:
		return "/chat"
	case Hybrid:
		return "/hybrid"
	case Dashboard:
		return "/dashboard"
	}
	return ""
}

// Title returns the text of the page's link in the header.
func (p Page) Title() string {
	switch p {
	case Demo:
		return "Demo"
	case Chat:
		return "Chat"
	case Hybrid:
		return "Hybrid"
	case Dashboard:
		return "Dashboard"
	}
	return ""
}

// Site is the set of pages one server serves: the header links to these
// only, so that a page turned off (--demo=false, --chat=false, no
// dashboard) is never a dead link. The zero Site has no links.
type Site struct {
	pages []Page
}

// NewSite returns the Site of the given pages, in that order.
func NewSite(pages ...Page) Site {
	return Site{pages: append([]Page(nil), pages...)}
}

// Pages returns the site's pages.
func (s Site) Pages() []Page { return append([]Page(nil), s.pages...) }

// Header returns the common header as HTML: the brand (a link to the first
// page) and a link to every page, the current one marked with
// aria-current="page".
func (s Site) Header(current Page) string {
	var b strings.Builder
	home := "/"
	if len(s.pages) > 0 {
		home = s.pages[0].Path()
	}
	fmt.Fprintf(&b, `<header class="site"><a class="brand" href="%s"><img src="/ui/favicon.svg" alt="" width="28" height="28"><span>Herald</span></a>`, html.EscapeString(home))
	b.WriteString(`<nav aria-label="Herald pages"><ul>`)
	for _, p := range s.pages {
		cur := ""
		if p == current {
			cur = ` aria-current="page"`
		}
		fmt.Fprintf(&b, `<li><a href="%s"%s>%s</a></li>`, html.EscapeString(p.Path()), cur, html.EscapeString(p.Title()))
	}
	b.WriteString(`</ul></nav></header>`)
	return b.String()
}

// Render returns page, the HTML of current, with HeaderMarker replaced by
// the header. A page without the marker is an error: it would have no
// header.
func (s Site) Render(page []byte, current Page) ([]byte, error) {
	if !bytes.Contains(page, []byte(HeaderMarker)) {
		return nil, fmt.Errorf("webui: the page %s has no %s", current.Path(), HeaderMarker)
	}
	return bytes.Replace(page, []byte(HeaderMarker), []byte(s.Header(current)), 1), nil
}

// contentTypes are the types of the files pages are made of.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".ico":  "image/x-icon",
	".ts":   "text/plain; charset=utf-8",
}

// ContentType returns the content type of a page file by its name, or ""
// for a file that is not part of a page (a Go source, say).
func ContentType(name string) string { return contentTypes[path.Ext(name)] }

// File serves body as the file name: its content type (by extension), an
// ETag so that browsers revalidate cheaply, Cache-Control: no-cache and
// nosniff. An HTML page also gets PageCSP and Referrer-Policy: no-referrer;
// an SVG a CSP that lets it run nothing when opened on its own.
func File(name string, body []byte) http.Handler {
	ctype := ContentType(name)
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", ctype)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", etag)
		h.Set("X-Content-Type-Options", "nosniff")
		switch path.Ext(name) {
		case ".html":
			h.Set("Content-Security-Policy", PageCSP)
			h.Set("Referrer-Policy", "no-referrer")
		case ".svg":
			h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
	})
}

// AssetPrefix is where the shared files are served.
const AssetPrefix = "/ui/"

// Register serves the shared files: GET /ui/{file} (ui.css, favicon.svg,
// favicon.ico) and GET /favicon.ico, which browsers ask for by themselves.
func Register(mux interface{ Handle(string, http.Handler) }) error {
	handlers, err := Handlers(ui.Files())
	if err != nil {
		return err
	}
	mux.Handle("GET "+AssetPrefix+"{file}", Dir(handlers))
	mux.Handle("GET /favicon.ico", handlers["favicon.ico"])
	return nil
}

// Handlers returns a File handler for every page file at the top of fsys,
// by name. Files of other types (Go sources of the embedding package) are
// left out.
func Handlers(fsys fs.FS) (map[string]http.Handler, error) {
	names, err := fs.Glob(fsys, "*")
	if err != nil {
		return nil, fmt.Errorf("webui: list files: %w", err)
	}
	out := make(map[string]http.Handler, len(names))
	for _, name := range names {
		if ContentType(name) == "" {
			continue
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("webui: read %s: %w", name, err)
		}
		out[name] = File(name, body)
	}
	return out, nil
}

// Dir serves the file of files named by the request's {file} path value;
// any other name is a 404 with a JSON error.
func Dir(files map[string]http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := files[r.PathValue("file")]
		if !ok {
			httpjson.Errorf(w, http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// PageFiles returns the handlers of a page made of the files at the top of
// fsys: the page itself (its HTML file index, rendered with site's header
// as the page current) and its other files, by name.
func PageFiles(fsys fs.FS, index string, site Site, current Page) (page http.Handler, assets map[string]http.Handler, err error) {
	body, err := fs.ReadFile(fsys, index)
	if err != nil {
		return nil, nil, fmt.Errorf("webui: read %s: %w", index, err)
	}
	if body, err = site.Render(body, current); err != nil {
		return nil, nil, err
	}
	assets, err = Handlers(fsys)
	if err != nil {
		return nil, nil, err
	}
	delete(assets, index) // one URL for the page
	return File(index, body), assets, nil
}
