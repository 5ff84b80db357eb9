// Package chat holds Herald's chat page (GET /chat): plain HTML, CSS and
// JavaScript, embedded in the binary, with no external resources.
package chat

import "embed"

// Files are the page's files: index.html, chat.js and chat.css.
//
//go:embed index.html chat.js chat.css
var Files embed.FS
