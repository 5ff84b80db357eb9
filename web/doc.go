// Package web holds Herald's browser files, embedded in the binary: the
// herald.js client and its example page (/hybrid) here, and the files of
// the other pages in packages of their own (demo, chat, dashboard) and what
// they share (ui). Each embeds its files with a go:embed directive in a
// file of its own.
package web
