// Package dashboard holds the files of Herald's dashboard page (index.html,
// dashboard.js, dashboard.css), embedded in the binary: plain HTML and
// JavaScript fed by the server's own Server-Sent Events.
package dashboard

import (
	"embed"
	"io/fs"
)

//go:embed index.html dashboard.js dashboard.css
var files embed.FS

// Files returns the page's files, by name.
func Files() fs.FS { return files }
