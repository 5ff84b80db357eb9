package codecheck

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/heraldpush/herald"

// root returns the module's directory.
func root(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

type pkg struct {
	ImportPath string
	Deps       []string
}

// listDeps returns every package of the module with its dependencies,
// direct and indirect (go list -deps), without tests.
func listDeps(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Deps", "./...")
	cmd.Dir = root(t)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func ours(path string) bool { return path == module || strings.HasPrefix(path, module+"/") }

// public reports whether path is a package outside code may import: not
// internal, not a command or benchmark tool.
func public(path string) bool {
	rel := strings.TrimPrefix(path, module+"/")
	return ours(path) && !strings.Contains("/"+rel+"/", "/internal/") &&
		!strings.HasPrefix(rel, "cmd/") && !strings.HasPrefix(rel, "bench/") && rel != "web" && !strings.HasPrefix(rel, "web/")
}

// The import direction, which the Go tree keeps in go/build/deps_test.go:
// wire format at the bottom, contract and hub in the middle, transports on
// top. A rule that fails names the package and the import that breaks it.
func TestImportDirection(t *testing.T) {
	pkgs := listDeps(t)
	byPath := map[string]pkg{}
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	rules := []struct {
		name    string
		applies func(string) bool
		bad     func(dep string) bool
	}{
		{"the SSE wire format imports nothing of ours", func(p string) bool { return p == module+"/sse" },
			ours},
		{"the broker contract and its implementations import no internal package of the server",
			func(p string) bool { return strings.HasPrefix(p, module+"/pubsub") },
			func(d string) bool { return strings.HasPrefix(d, module+"/internal/") }},
		{"public packages import only public packages (and their own internal ones)", public,
			func(d string) bool { return ours(d) && !public(d) && !strings.HasPrefix(d, module+"/pubsub/internal/") }},
		{"the hub imports no transport", func(p string) bool { return p == module+"/internal/hub" },
			func(d string) bool {
				return strings.HasPrefix(d, module+"/internal/transport") || d == module+"/internal/api" || d == module+"/internal/mercure"
			}},
		{"transports import no face", func(p string) bool { return strings.HasPrefix(p, module+"/internal/transport") },
			func(d string) bool {
				for _, face := range []string{"mercure", "chat", "aisdk", "demo", "dashboard", "app", "admin"} {
					if d == module+"/internal/"+face {
						return true
					}
				}
				return false
			}},
	}
	checked := 0
	for _, r := range rules {
		for _, p := range pkgs {
			if !r.applies(p.ImportPath) {
				continue
			}
			checked++
			for _, d := range p.Deps {
				if r.bad(d) {
					t.Errorf("%s: %s depends on %s", r.name, p.ImportPath, d)
				}
			}
		}
	}
	for _, must := range []string{"sse", "sseclient", "pubsub", "internal/hub", "internal/transport/sse", "internal/transport/ws"} {
		if _, ok := byPath[module+"/"+must]; !ok {
			t.Errorf("package %s not found: the rules check nothing", must)
		}
	}
	if checked == 0 {
		t.Fatal("no package was checked")
	}
}

// maxLines bounds a non-test source file.
const maxLines = 800

// No non-test Go source file is over maxLines lines: a file that grows
// past it holds more than one concern.
func TestFileLength(t *testing.T) {
	dir := root(t)
	seen := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "testdata", "node_modules", ".git":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		n, err := countLines(path)
		if err != nil {
			return err
		}
		seen++
		if n > maxLines {
			t.Errorf("%s has %d lines (at most %d): split it by concern", rel, n, maxLines)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 50 {
		t.Fatalf("only %d source files found under %s", seen, dir)
	}
}

func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		n++
	}
	return n, s.Err()
}

// staticcheckVersion is the staticcheck the code is kept clean with,
// installed from the Go module proxy like any module.
const staticcheckVersion = "v0.8.2" // honnef.co/go/tools, staticcheck 2026.2.2

// The code is staticcheck clean (all default checks, tests included).
func TestStaticcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("staticcheck takes a minute or two: it runs without -short")
	}
	cmd := exec.Command("go", "run", "honnef.co/go/tools/cmd/staticcheck@"+staticcheckVersion, "-f", "text", "./...")
	cmd.Dir = root(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running staticcheck: %v\n%s", err, stderr.String())
	}
	var findings []string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if line == "" {
			continue
		}
		findings = append(findings, line)
	}
	if len(findings) > 0 {
		t.Fatalf("staticcheck %s: %d findings:\n%s", staticcheckVersion, len(findings), strings.Join(findings, "\n"))
	}
	if err != nil && stdout.Len() == 0 {
		t.Fatalf("staticcheck failed without findings: %v\n%s", err, stderr.String())
	}
}
