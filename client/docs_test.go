package client_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestDocsProgramsCompile builds every Go program in docs/client.md, so
// that the documentation cannot drift from the API.
func TestDocsProgramsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	doc, err := os.ReadFile("../docs/client.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```go\n(package main\n.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) < 2 {
		t.Fatalf("found %d programs in docs/client.md, want at least 2", len(blocks))
	}
	// Inside the module (testdata is ignored by ./... patterns), so that the
	// programs import this module's packages.
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("testdata", "docs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(dir)
		os.Remove("testdata") // if empty
	})
	for i, b := range blocks {
		pkg := filepath.Join(dir, "prog"+string(rune('a'+i)))
		if err := os.MkdirAll(pkg, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pkg, "main.go"), b[1], 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("go", "vet", "./"+pkg).CombinedOutput()
		if err != nil {
			t.Errorf("program %d of docs/client.md does not build: %v\n%s\n%s", i+1, err, out, b[1])
		}
	}
}
