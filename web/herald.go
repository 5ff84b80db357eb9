package web

import "embed"

// Herald holds the browser client and its hybrid example page:
// herald.js (ES module), herald.d.ts (TypeScript declarations), and
// hybrid.html, hybrid.js, hybrid.css (the page at /hybrid).
//
//go:embed herald.js herald.d.ts hybrid.html hybrid.js hybrid.css
var Herald embed.FS
