// Package codecheck holds the checks the codebase keeps on itself, as
// tests that run with the rest of the suite (go test ./...): the direction
// of imports, the length of source files, staticcheck at a pinned
// version, and no fixed sleeps in tests (time.Sleep or a bare
// <-time.After outside testing/synctest). It has no code of its own.
package codecheck
