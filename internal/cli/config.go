package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/heraldpush/herald/internal/config"
)

func init() {
	register("config", "check a configuration file, or print the effective configuration", runConfig)
}

const configUsage = `Usage:
  herald config check FILE            validate a configuration file
  herald config print [serve flags]   print the effective configuration as YAML (secrets redacted)

A configuration file is YAML whose keys are the flag names of 'herald serve'
(e.g. "addr: ':8080'", "history-max-events: 1000", lists for list flags).
Precedence: command-line flags, then HERALD_* environment variables, then the
file, then the defaults.
`

func runConfig(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.Stdout, configUsage)
		if len(args) == 0 {
			return &ExitError{Code: 2, Err: fmt.Errorf("%w", errReported)}
		}
		return nil
	}
	var cfg config.Server
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfg.Register(fs)
	switch args[0] {
	case "check":
		if len(args) != 2 {
			return &ExitError{Code: 2, Err: fmt.Errorf("usage: herald config check FILE")}
		}
		if err := config.LoadFile(fs, args[1], nil); err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("%s: %w", args[1], err)
		}
		fmt.Fprintf(env.Stdout, "%s: OK\n", args[1])
		return nil
	case "print":
		if err := parseErr(config.Parse(fs, args[1:], env.Getenv)); err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return err
		}
		env.Stdout.Write(config.WriteYAML(fs))
		return nil
	}
	return &ExitError{Code: 2, Err: fmt.Errorf("config: unknown subcommand %q (use check or print)", args[0])}
}
