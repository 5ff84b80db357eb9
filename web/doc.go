// Package web holds Herald's browser files, embedded in the binary with
// go:embed: the herald.js client and the example and demo pages. Each
// feature embeds its own files in a file of its own.
package web
