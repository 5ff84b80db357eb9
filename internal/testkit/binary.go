package testkit

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildHerald builds the herald command into a directory of t's and
// returns its path (the go command's cache makes builds after the first
// one quick). A test that runs the binary as a process uses it.
func BuildHerald(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "herald")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/heraldpush/herald/cmd/herald").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
