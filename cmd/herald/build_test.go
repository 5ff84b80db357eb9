package main_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestStaticBuild builds herald as the Dockerfile does (CGO_ENABLED=0) and
// checks that the binary is statically linked, runs, and reports a version.
func TestStaticBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	if runtime.GOOS != "linux" {
		t.Skip("checks an ELF binary")
	}
	bin := filepath.Join(t.TempDir(), "herald")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X github.com/heraldpush/herald/internal/cli.version=v9.9.9-test", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("static build failed: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("binary is dynamically linked (program header %v)", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Fatalf("binary imports shared libraries: %v", libs)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("herald version: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "herald v9.9.9-test") || !strings.Contains(string(out), runtime.Version()) {
		t.Fatalf("herald version printed %q", out)
	}
}
