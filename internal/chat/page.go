package chat

import (
	"net/http"

	"github.com/heraldpush/herald/internal/webui"
	chatweb "github.com/heraldpush/herald/web/chat"
)

// Page returns the handlers of the chat page: page serves GET /chat (with
// site's header), assets GET /chat/{file} (its script, modules and style
// sheet; other names are a 404).
func Page(site webui.Site) (page, assets http.Handler, err error) {
	p, files, err := webui.PageFiles(chatweb.Files, "index.html", site, webui.Chat)
	if err != nil {
		return nil, nil, err
	}
	return p, webui.Dir(files), nil
}
