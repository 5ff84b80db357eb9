// Package cli implements the herald command: serve, publish, subscribe,
// bench, config and version. Each subcommand lives in a file of its own.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/heraldpush/herald/internal/config"
)

// Env is what a command may use of the world.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

type command struct {
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

var commands = map[string]command{}

func register(name, summary string, run func(ctx context.Context, env *Env, args []string) error) {
	commands[name] = command{summary: summary, run: run}
}

// ExitError carries an exit code other than 1.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Main runs the herald command with args (without the program name) and
// returns the process's exit code.
func Main(ctx context.Context, args []string, env *Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return exitCode(env, c.run(ctx, env, []string{"--help"}))
			}
		}
		usage(env.Stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "herald: unknown command %q\n\n", args[0])
		usage(env.Stderr)
		return 2
	}
	return exitCode(env, c.run(ctx, env, args[1:]))
}

func exitCode(env *Env, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ee *ExitError
	code := 1
	if errors.As(err, &ee) {
		code = ee.Code
	}
	if !errors.Is(err, errReported) {
		fmt.Fprintf(env.Stderr, "herald: %v\n", err)
	}
	return code
}

// errReported marks errors already printed (flag parse errors).
var errReported = errors.New("reported")

func usage(w io.Writer) {
	fmt.Fprint(w, "Herald is a real-time push server: Server-Sent Events and WebSocket with exact resume.\n\nUsage:\n  herald <command> [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, "\nRun 'herald <command> --help' for the flags of a command. Every flag of serve\nmay also be set as an environment variable HERALD_<FLAG> (e.g. HERALD_ADDR).\n")
	fmt.Fprint(w, "\nFlags of serve:\n")
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	new(serveConfig).register(fs)
	printFlags(w, fs)
}

// newFlagSet returns a flag set whose usage prints every flag with its
// default to env.Stdout, and whose errors are printed once.
func newFlagSet(env *Env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stdout, "Usage: herald %s\n\nFlags:\n", synopsis)
		printFlags(env.Stdout, fs)
	}
	return fs
}

func parseErr(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	if errors.Is(err, config.ErrUsage) {
		return &ExitError{Code: 2, Err: fmt.Errorf("%w: %v", errReported, err)}
	}
	return &ExitError{Code: 2, Err: err}
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(strings.ToUpper(level)))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
