package chat

import (
	"net/http"

	"github.com/heraldpush/herald/internal/httpjson"
	chatweb "github.com/heraldpush/herald/web/chat"
)

// pageCSP allows the page's own files only: no inline code, no CDN.
const pageCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

var assetTypes = map[string]string{
	"index.html": "text/html; charset=utf-8",
	"chat.js":    "text/javascript; charset=utf-8",
	"chat.css":   "text/css; charset=utf-8",
}

// HandlePage serves GET /chat: the chat page.
func HandlePage(w http.ResponseWriter, r *http.Request) {
	serveAsset(w, r, "index.html")
}

// HandleAsset serves GET /chat/{file}: the page's script and style sheet.
func HandleAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name == "index.html" {
		name = "" // one URL for the page: /chat
	}
	serveAsset(w, r, name)
}

func serveAsset(w http.ResponseWriter, r *http.Request, name string) {
	ctype, ok := assetTypes[name]
	if !ok {
		httpjson.Errorf(w, http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
		return
	}
	b, err := chatweb.Files.ReadFile(name)
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, "chat page missing from the build")
		return
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	if name == "index.html" {
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("Referrer-Policy", "no-referrer")
	}
	if r.Method == http.MethodHead {
		return
	}
	w.Write(b)
}
