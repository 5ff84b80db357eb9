package codecheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sleepAllowed lists the fixed waits a test may keep, by "file:function",
// each with the reason it is not a wait for something to happen. Anything
// else waits on the condition it stands for (testkit.Within, WaitFor, a
// channel), or sleeps in fake time inside synctest.Test.
var sleepAllowed = map[string]string{
	// The test proxy holds each chunk for the latency it simulates: the
	// delay is the behaviour under test (a slow network), and a busy
	// machine only makes it longer, which the tests allow.
	"web/proxy_test.go:pipe": "simulated network latency",
}

// helperPackage reports whether dir (slash-separated, relative to the
// module) holds a test-helper package: testkit and the packages whose
// name ends in "test" (pubsubtest, browsertest, apptest, crashtest...).
func helperPackage(dir string) bool {
	base := dir[strings.LastIndex(dir, "/")+1:]
	return base == "testkit" || strings.HasSuffix(base, "test")
}

// No test waits a fixed time: every time.Sleep and bare <-time.After(d)
// in a _test.go file or a test-helper package is a wait whose length was
// guessed on an idle machine, and fails (or slows) the suite on a busy
// one. Sleeping is allowed inside synctest.Test and in a helper that calls
// synctest.Wait (it runs in a bubble only), where time is fake and a sleep
// is an exact step of the clock; and in sleepAllowed.
func TestNoFixedSleepsInTests(t *testing.T) {
	dir := root(t)
	fset := token.NewFileSet()
	files, used := 0, map[string]bool{}
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
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if !strings.HasSuffix(rel, ".go") || !(strings.HasSuffix(rel, "_test.go") || helperPackage(filepath.ToSlash(filepath.Dir(rel)))) {
			return nil
		}
		if rel == "internal/codecheck/sleep_test.go" {
			return nil // names the calls it looks for, in its examples
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files++
		for _, w := range fixedWaits(fset, f) {
			key := rel + ":" + w.fn
			if _, ok := sleepAllowed[key]; ok {
				used[key] = true
				continue
			}
			t.Errorf("%s:%d: %s in %s waits a fixed time: wait on the condition it stands for (testkit.Within/WaitFor, a channel) or use testing/synctest",
				rel, w.line, w.what, w.fn)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("only %d test files found under %s", files, dir)
	}
	for key := range sleepAllowed {
		if !used[key] {
			t.Errorf("sleepAllowed lists %s, which has no fixed wait any more: remove it", key)
		}
	}
}

// The check finds what it should: sleeps and bare receives from
// time.After outside a synctest bubble, under any import name, and not
// the timeouts of a select or sleeps in fake time.
func TestFixedWaitsFound(t *testing.T) {
	src := `package p
import (
	tm "time"
	"testing/synctest"
	"testing"
)
func a() { tm.Sleep(tm.Second) }
func b() { <-tm.After(tm.Second) }
func c(ch chan int) {
	select {
	case <-ch:
	case <-tm.After(tm.Second):
	}
}
func d(t *testing.T) { synctest.Test(t, func(t *testing.T) { tm.Sleep(tm.Hour); <-tm.After(1) }) }
func e() { go func() { tm.Sleep(1) }() }
func f(d tm.Duration) { <-tm.After(d); synctest.Wait() }
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p_test.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range fixedWaits(fset, f) {
		got = append(got, fmt.Sprintf("%s@%s:%d", w.what, w.fn, w.line))
	}
	want := "time.Sleep@a:7 <-time.After@b:8 time.Sleep@e:16"
	if strings.Join(got, " ") != want {
		t.Errorf("found %q, want %q", strings.Join(got, " "), want)
	}
}

// fixedWait is one fixed wait found in a file.
type fixedWait struct {
	what string // "time.Sleep" or "<-time.After"
	fn   string // the enclosing top-level function
	line int
}

// fixedWaits returns the calls to time.Sleep and the bare receives from
// time.After (a statement <-time.After(d), not a select case) in f that
// are not inside a function literal passed to synctest.Test, nor in a
// function that calls synctest.Wait (one that runs in a bubble only).
func fixedWaits(fset *token.FileSet, f *ast.File) []fixedWait {
	timeName, synctestName := "", ""
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		name := p[strings.LastIndex(p, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		switch p {
		case "time":
			timeName = name
		case "testing/synctest":
			synctestName = name
		}
	}
	if timeName == "" || timeName == "_" {
		return nil
	}
	isTime := func(e ast.Expr, fn string) bool {
		call, ok := e.(*ast.CallExpr)
		if !ok {
			return false
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return false
		}
		x, ok := sel.X.(*ast.Ident)
		return ok && x.Name == timeName && sel.Sel.Name == fn
	}
	var found []fixedWait
	for _, decl := range f.Decls {
		fd, ok := decl.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		name := fd.Name.Name
		if fd.Recv != nil && len(fd.Recv.List) == 1 {
			name = recvName(fd.Recv.List[0].Type) + "." + name
		}
		if callsSynctestWait(fd.Body, synctestName) {
			continue // runs in a bubble only: synctest.Wait panics outside one
		}
		var walk func(n ast.Node) bool
		walk = func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CommClause:
				// A select's case <-time.After(d) is a timeout, not a wait.
				for _, st := range n.Body {
					ast.Inspect(st, walk)
				}
				return false
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && synctestName != "" {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == synctestName && sel.Sel.Name == "Test" {
						return false // fake time: a sleep is a step of the clock
					}
				}
				if isTime(n, "Sleep") {
					found = append(found, fixedWait{"time.Sleep", name, fset.Position(n.Pos()).Line})
				}
			case *ast.ExprStmt:
				if u, ok := n.X.(*ast.UnaryExpr); ok && u.Op == token.ARROW && isTime(u.X, "After") {
					found = append(found, fixedWait{"<-time.After", name, fset.Position(n.Pos()).Line})
				}
			}
			return true
		}
		ast.Inspect(fd.Body, walk)
	}
	return found
}

// callsSynctestWait reports whether body calls synctest.Wait, which
// panics outside a synctest bubble: a helper that does is for fake time.
func callsSynctestWait(body *ast.BlockStmt, synctestName string) bool {
	if synctestName == "" {
		return false
	}
	found := false
	ast.Inspect(body, func(n ast.Node) bool {
		if call, ok := n.(*ast.CallExpr); ok {
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == synctestName && sel.Sel.Name == "Wait" {
					found = true
				}
			}
		}
		return !found
	})
	return found
}

// recvName returns the type name of a method's receiver.
func recvName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return recvName(e.X)
	case *ast.IndexExpr:
		return recvName(e.X)
	case *ast.IndexListExpr:
		return recvName(e.X)
	case *ast.Ident:
		return e.Name
	}
	return "?"
}
