// Package demo holds the files of Herald's demo page (index.html, demo.js,
// demo.css), embedded in the binary so that the page needs no build step and
// no network: plain HTML and JavaScript with the browser's own EventSource.
package demo

import (
	"embed"
	"io/fs"
)

//go:embed index.html demo.js demo.css
var files embed.FS

// Files returns the page's files, by name.
func Files() fs.FS { return files }
