package cli_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/cli"
	"github.com/heraldpush/herald/pubsub/bolt"
)

func TestResetEpochCommand(t *testing.T) {
	dir := t.TempDir()
	b, err := bolt.Open(filepath.Join(dir, bolt.FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	old := b.Epoch()
	b.Close()

	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := cli.Main(context.Background(), args, &cli.Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
		return code, out.String() + errOut.String()
	}
	if code, out := run("reset-epoch"); code != 2 || !strings.Contains(out, "--data-dir is required") {
		t.Errorf("without --data-dir: exit %d, %q", code, out)
	}
	if code, out := run("reset-epoch", "--data-dir", t.TempDir()); code != 1 {
		t.Errorf("empty directory: exit %d, %q", code, out)
	}
	code, out := run("reset-epoch", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "new epoch") {
		t.Fatalf("exit %d, %q", code, out)
	}
	b, err = bolt.Open(filepath.Join(dir, bolt.FileName), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Epoch() == old || !strings.Contains(out, b.Epoch()) {
		t.Errorf("epoch %q after reset-epoch (was %q), output %q", b.Epoch(), old, out)
	}
}
