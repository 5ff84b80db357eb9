package cli

import (
	"context"
	"fmt"
	"runtime/debug"
)

func init() {
	register("version", "print the version, commit and Go version", runVersion)
}

// version may be set at build time:
// -ldflags "-X github.com/heraldpush/herald/internal/cli.version=v1.2.3".
var version string

// Version describes the running binary: module version (or the one set at
// build time), commit, and Go version.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "herald (unknown version)"
	}
	v := bi.Main.Version
	if version != "" {
		v = version
	}
	if v == "" {
		v = "(devel)"
	}
	var rev, modified, when string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = " (modified)"
			}
		case "vcs.time":
			when = " " + s.Value
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	return fmt.Sprintf("herald %s\ncommit %s%s%s\n%s %s/%s", v, rev, modified, when, bi.GoVersion, goos, goarch)
}

func runVersion(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "version", "version")
	if err := parseErr(fs.Parse(args)); err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, Version())
	return nil
}
