package cli

import (
	"context"
	"flag"
	"io"

	"github.com/heraldpush/herald/internal/app"
	"github.com/heraldpush/herald/internal/config"
)

func init() {
	register("serve", "run the push server (embedded by default: nothing else needed)", runServe)
}

type serveConfig struct{ config.Server }

func (c *serveConfig) register(fs *flag.FlagSet) { c.Server.Register(fs) }

func printFlags(w io.Writer, fs *flag.FlagSet) { config.PrintDefaults(w, fs) }

func runServe(ctx context.Context, env *Env, args []string) error {
	var cfg serveConfig
	fs := newFlagSet(env, "serve", "serve [flags]")
	cfg.register(fs)
	if err := parseErr(config.Parse(fs, args, env.Getenv)); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &ExitError{Code: 2, Err: errorf("serve: unexpected argument %q", fs.Arg(0))}
	}
	if err := cfg.Validate(); err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	log := newLogger(env.Stderr, cfg.Core.LogFormat, cfg.Core.LogLevel)
	return app.Run(ctx, cfg.Server, log)
}
