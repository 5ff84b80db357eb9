package webui_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
	"github.com/heraldpush/herald/internal/webui"
)

func TestHeader(t *testing.T) {
	for _, tc := range []struct {
		name    string
		site    webui.Site
		current webui.Page
		want    []string
		notWant []string
	}{
		{
			name:    "all four",
			site:    webui.NewSite(webui.Demo, webui.Chat, webui.Hybrid, webui.Dashboard),
			current: webui.Chat,
			want: []string{`<a class="brand" href="/">`, `<a href="/">Demo</a>`, `<a href="/chat" aria-current="page">Chat</a>`,
				`<a href="/hybrid">Hybrid</a>`, `<a href="/dashboard">Dashboard</a>`, `<nav aria-label="Herald pages">`},
		},
		{
			name:    "no demo: the brand links to the first page served",
			site:    webui.NewSite(webui.Hybrid),
			current: webui.Hybrid,
			want:    []string{`<a class="brand" href="/hybrid">`, `<a href="/hybrid" aria-current="page">Hybrid</a>`},
			notWant: []string{`href="/"`, "Demo", "Chat", "Dashboard"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.site.Header(tc.current)
			for _, w := range tc.want {
				if !strings.Contains(h, w) {
					t.Errorf("header lacks %s:\n%s", w, h)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(h, w) {
					t.Errorf("header has %s:\n%s", w, h)
				}
			}
			if n := strings.Count(h, "aria-current"); n != 1 {
				t.Errorf("%d pages marked current", n)
			}
		})
	}
}

func TestRender(t *testing.T) {
	site := webui.NewSite(webui.Demo)
	out, err := site.Render([]byte("<body>\n"+webui.HeaderMarker+"\n<main></main>"), webui.Demo)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), webui.HeaderMarker) || !strings.Contains(string(out), `<header class="site">`) {
		t.Fatalf("rendered: %s", out)
	}
	if _, err := site.Render([]byte("<body>no marker"), webui.Demo); err == nil {
		t.Fatal("a page without the marker rendered")
	}
}

func get(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// The shared files over real HTTP: types, ETag revalidation, a real ICO at
// /favicon.ico, JSON 404s, and the CSP of pages.
func TestSharedFiles(t *testing.T) {
	srv := apptest.Start(t, nil)
	for path, ctype := range map[string]string{
		"/ui/ui.css":       "text/css; charset=utf-8",
		"/ui/favicon.svg":  "image/svg+xml",
		"/ui/favicon.ico":  "image/x-icon",
		"/favicon.ico":     "image/x-icon",
		"/herald.js":       "text/javascript; charset=utf-8",
		"/herald.d.ts":     "text/plain; charset=utf-8",
		"/hybrid":          "text/html; charset=utf-8",
		"/hybrid.js":       "text/javascript; charset=utf-8",
		"/hybrid.css":      "text/css; charset=utf-8",
		"/":                "text/html; charset=utf-8",
		"/chat":            "text/html; charset=utf-8",
		"/chat/chat.js":    "text/javascript; charset=utf-8",
		"/dashboard":       "text/html; charset=utf-8",
		"/demo/demo.css":   "text/css; charset=utf-8",
		"/chat/chat.css":   "text/css; charset=utf-8",
		"/demo/demo.js":    "text/javascript; charset=utf-8",
		"/ui/favicon.svg?": "image/svg+xml",
	} {
		resp, body := get(t, srv.URL+path)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ctype || len(body) == 0 {
			t.Errorf("%s: %s, Content-Type %q, %d bytes", path, resp.Status, resp.Header.Get("Content-Type"), len(body))
			continue
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("ETag") == "" {
			t.Errorf("%s: headers %v", path, resp.Header)
		}
		if again, _ := get(t, srv.URL+path, "If-None-Match", resp.Header.Get("ETag")); again.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its ETag: %s, want 304", path, again.Status)
		}
		if strings.HasPrefix(ctype, "text/html") {
			if csp := resp.Header.Get("Content-Security-Policy"); csp != webui.PageCSP {
				t.Errorf("%s: CSP %q", path, csp)
			}
			// Every page has the header, linking the four pages, with
			// itself marked, and the shared style sheet and icon.
			for _, want := range []string{`<header class="site">`, `href="/chat"`, `href="/hybrid"`, `href="/dashboard"`, `aria-current="page"`,
				`<link rel="stylesheet" href="/ui/ui.css">`, `<link rel="icon" href="/ui/favicon.svg" type="image/svg+xml">`} {
				if !bytes.Contains(body, []byte(want)) {
					t.Errorf("%s lacks %s", path, want)
				}
			}
			if bytes.Contains(body, []byte(webui.HeaderMarker)) {
				t.Errorf("%s: the header marker was not replaced", path)
			}
		}
	}

	// /favicon.ico is an ICO whose images are PNGs of the sizes it says.
	_, ico := get(t, srv.URL+"/favicon.ico")
	var head struct{ Reserved, Type, Count uint16 }
	if err := binary.Read(bytes.NewReader(ico), binary.LittleEndian, &head); err != nil || head.Type != 1 || head.Count == 0 {
		t.Fatalf("favicon.ico header %+v: %v", head, err)
	}
	for i := range int(head.Count) {
		e := ico[6+16*i:]
		size, length, offset := int(e[0]), binary.LittleEndian.Uint32(e[8:]), binary.LittleEndian.Uint32(e[12:])
		img, err := png.Decode(bytes.NewReader(ico[offset : offset+length]))
		if err != nil {
			t.Fatalf("favicon.ico image %d: %v", i, err)
		}
		if b := img.Bounds(); b.Dx() != size || b.Dy() != size {
			t.Fatalf("favicon.ico image %d is %v, the directory says %d px", i, b, size)
		}
	}

	for _, path := range []string{"/ui/nope.css", "/ui/embed.go", "/chat/index.html", "/demo/index.html", "/chat/page.go"} {
		resp, body := get(t, srv.URL+path)
		var e struct{ Error string }
		if resp.StatusCode != http.StatusNotFound || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, "no such endpoint") {
			t.Errorf("%s: %s %s, want a JSON 404", path, resp.Status, body)
		}
	}
}

// The header links to the pages the server serves, and to no other.
func TestHeaderFollowsTheConfiguration(t *testing.T) {
	srv := apptest.Start(t, func(c *config.Server) {
		c.Demo.Enabled = false
		c.Chat.Enabled = false
		c.Auth.JWT.Key = strings.Repeat("k", 32) // not development mode: no dashboard
	})
	resp, body := get(t, srv.URL+"/hybrid")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/hybrid: %s", resp.Status)
	}
	for _, path := range []string{`href="/"`, `href="/chat"`, `href="/dashboard"`} {
		if bytes.Contains(body, []byte(path)) {
			t.Errorf("/hybrid links to a page the server does not serve: %s", path)
		}
	}
	if !bytes.Contains(body, []byte(`<a class="brand" href="/hybrid">`)) {
		t.Errorf("brand: %s", body)
	}
}

func TestHandlersLeaveOutOtherFiles(t *testing.T) {
	fsys := fstest.MapFS{"a.js": {Data: []byte("x")}, "b.go": {Data: []byte("package b")}, "c.css": {Data: []byte("y")}}
	hs, err := webui.Handlers(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 2 || hs["a.js"] == nil || hs["c.css"] == nil {
		t.Fatalf("handlers %v", hs)
	}
	rec := httptest.NewRecorder()
	hs["a.js"].ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/a.js", nil))
	if rec.Body.String() != "x" || rec.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("a.js: %q %v", rec.Body, rec.Header())
	}
}
