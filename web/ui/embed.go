// Package ui holds what Herald's four pages share, embedded in the binary:
// the style sheet (ui.css: colours as custom properties with a light and a
// dark set, the header, controls) and the favicon (favicon.svg and
// favicon.ico). internal/webui serves them and renders the common header.
package ui

import (
	"embed"
	"io/fs"
)

//go:embed ui.css favicon.svg favicon.ico
var files embed.FS

// Files returns the shared files, by name.
func Files() fs.FS { return files }
