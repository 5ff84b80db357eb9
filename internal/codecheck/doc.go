// Package codecheck holds the checks the codebase keeps on itself, as
// tests that run with the rest of the suite (go test ./...): the direction
// of imports, the length of source files, and staticcheck at a pinned
// version. It has no code of its own.
package codecheck
