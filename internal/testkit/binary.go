package testkit

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildHerald builds the herald command into a directory of t's and
// returns its path (the go command's cache makes builds after the first
// one quick). A test that runs the binary as a process uses it.
func BuildHerald(t testing.TB) string {
	t.Helper()
	bin, err := BuildHeraldIn(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// BuildHeraldIn builds the herald command into dir and returns its path:
// for a package that builds it once for all its tests (in TestMain).
func BuildHeraldIn(dir string) (string, error) {
	bin := filepath.Join(dir, "herald")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/heraldpush/herald/cmd/herald").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}
