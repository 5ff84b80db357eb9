// Package chat holds Herald's chat page (GET /chat): plain HTML, CSS and
// JavaScript, embedded in the binary, with no external resources.
package chat

import "embed"

// Files are the page's files: index.html, chat.js (an ES module),
// markdown.js (the module that renders answers) and chat.css.
//
//go:embed index.html chat.js markdown.js chat.css
var Files embed.FS
