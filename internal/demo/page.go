package demo

import (
	"github.com/heraldpush/herald/internal/access"
	"github.com/heraldpush/herald/internal/webui"
	webdemo "github.com/heraldpush/herald/web/demo"
)

// PagePath is where the demo page is served; its other files are under
// AssetPrefix.
const (
	PagePath    = "/"
	AssetPrefix = "/demo/"
)

// registerPage serves index.html at / with site's header, and the page's
// other files under /demo/.
func registerPage(mux access.Mux, site webui.Site) error {
	page, assets, err := webui.PageFiles(webdemo.Files(), "index.html", site, webui.Demo)
	if err != nil {
		return err
	}
	mux.Handle("GET /{$}", page)
	mux.Handle("GET "+AssetPrefix+"{file}", webui.Dir(assets))
	return nil
}
