// Package config holds the server's configuration: every setting, its flag,
// its environment variable (HERALD_<FLAG>, upper case, dashes as
// underscores) and its default. It is a leaf: it imports nothing of Herald.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// Server is the configuration of `herald serve`. Each feature's settings are
// in a struct of their own, registered by its own file.
type Server struct {
	// File is the configuration file given with --config, if any.
	File    string
	Core    Core
	History History
	Limits  Limits
	Broker  Broker
	Auth    Auth
	HTTP    HTTP
	WS      WS
	Chat    Chat
	Demo    Demo
	Ops     Ops
	Mercure Mercure
	Streams Streams
}

// Core holds the basic server settings.
type Core struct {
	Addr            string
	LogFormat       string
	LogLevel        string
	Retry           time.Duration
	KeepAlive       time.Duration
	WriteTimeout    time.Duration
	ShutdownTimeout time.Duration
}

// History bounds the event history kept for resuming clients.
type History struct {
	MaxEvents int
	MaxAge    time.Duration
	MaxBytes  ByteSize
}

// Limits bound what one request or subscriber may use.
type Limits struct {
	MaxDataBytes ByteSize
	MaxTopics    int
	QueueBytes   ByteSize
	MaxBatch     int
}

// Register binds every server flag to c, with its default.
func (c *Server) Register(fs *flag.FlagSet) {
	fs.StringVar(&c.File, "config", "", "configuration file (YAML) whose keys are flag names; flags and environment variables win over it")
	fs.StringVar(&c.Core.Addr, "addr", ":8080", "listen address (host:port)")
	fs.StringVar(&c.Core.LogFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.Core.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&c.Core.Retry, "retry", 5*time.Second, "reconnection delay suggested to SSE clients (retry: field)")
	fs.DurationVar(&c.Core.KeepAlive, "keepalive", 15*time.Second, "interval of keep-alive comments on idle streams")
	fs.DurationVar(&c.Core.WriteTimeout, "write-timeout", 10*time.Second, "deadline for each write to a subscriber; a subscriber that cannot take a write in time is cut off")
	fs.DurationVar(&c.Core.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")

	fs.IntVar(&c.History.MaxEvents, "history-max-events", 1000, "events kept per topic for resuming clients (0: no limit)")
	fs.DurationVar(&c.History.MaxAge, "history-max-age", time.Hour, "how long events are kept for resuming clients; finished topics are forgotten after it (0: no limit)")
	c.History.MaxBytes = 256 << 20
	fs.Var(&c.History.MaxBytes, "history-max-bytes", "cap on all history (memory, or disk with --data-dir), e.g. 256MiB, shared fairly: the topic holding the most loses its oldest events first, and no topic its newest (0: no limit)")

	c.Limits.MaxDataBytes = 1 << 20
	fs.Var(&c.Limits.MaxDataBytes, "max-data-bytes", "largest event data accepted by /publish")
	fs.IntVar(&c.Limits.MaxTopics, "max-topics", 64, "most topics in one subscription or one published event")
	c.Limits.QueueBytes = 4 << 20
	fs.Var(&c.Limits.QueueBytes, "queue-bytes", "per-subscriber queue cap; a subscriber that falls further behind is cut off and resumes from history")
	fs.IntVar(&c.Limits.MaxBatch, "max-batch", 1000, "most events in one batch publish request")

	c.Broker.register(fs)
	c.Auth.register(fs)
	c.HTTP.register(fs)
	c.WS.register(fs)
	c.Chat.register(fs)
	c.Demo.register(fs)
	c.Ops.register(fs)
	c.Mercure.register(fs)
	c.Streams.register(fs)
}

// Validate checks values that a flag's type cannot.
func (c *Server) Validate() error {
	var errs []error
	switch c.Core.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log-format: %q is not text or json", c.Core.LogFormat))
	}
	switch strings.ToLower(c.Core.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log-level: %q is not debug, info, warn or error", c.Core.LogLevel))
	}
	positive := map[string]time.Duration{"retry": c.Core.Retry, "keepalive": c.Core.KeepAlive, "write-timeout": c.Core.WriteTimeout, "shutdown-timeout": c.Core.ShutdownTimeout}
	for _, name := range sortedKeys(positive) {
		if positive[name] <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", name, positive[name]))
		}
	}
	if c.History.MaxEvents < 0 || c.History.MaxAge < 0 {
		errs = append(errs, errors.New("history-max-events, history-max-age: must not be negative"))
	}
	if c.Limits.MaxDataBytes <= 0 || c.Limits.QueueBytes <= 0 {
		errs = append(errs, errors.New("max-data-bytes, queue-bytes: must be positive"))
	}
	if c.Limits.MaxTopics <= 0 || c.Limits.MaxBatch <= 0 {
		errs = append(errs, errors.New("max-topics, max-batch: must be positive"))
	}
	errs = append(errs, c.Broker.validate(), c.Auth.validate(), c.HTTP.validate(), c.WS.validate(), c.Chat.validate(), c.Demo.validate(), c.Ops.validate(), c.Mercure.validate(), c.Streams.validate())
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ErrUsage wraps command-line syntax errors, which the flag package has
// already reported on the flag set's output.
var ErrUsage = errors.New("usage error")

// EnvName returns the environment variable for a flag: HERALD_ and the flag
// name in upper case with dashes as underscores.
func EnvName(flagName string) string {
	return "HERALD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs, then sets every flag not given on the command
// line from its environment variable, if set (getenv nil means os.Getenv),
// then every flag still unset from the configuration file named by the
// "config" flag, if fs has one and it is set. Precedence: flags, then
// environment, then file, then defaults.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := parseFlagsEnv(fs, args, getenv); err != nil {
		return err
	}
	f := fs.Lookup("config")
	if f == nil || f.Value.String() == "" {
		return nil
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name := range envSet(fs, getenv) {
		set[name] = true
	}
	return LoadFile(fs, f.Value.String(), set)
}

func envSet(fs *flag.FlagSet, getenv func(string) string) map[string]bool {
	if getenv == nil {
		getenv = os.Getenv
	}
	out := make(map[string]bool)
	fs.VisitAll(func(f *flag.Flag) {
		if getenv(EnvName(f.Name)) != "" {
			out[f.Name] = true
		}
	})
	return out
}

func parseFlagsEnv(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		env := EnvName(f.Name)
		if v := getenv(env); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: invalid value %q: %s", env, v, reason(f, err)))
			}
		}
	})
	return errors.Join(errs...)
}

// PrintDefaults writes every flag of fs with its environment variable and
// default, in the style of flag.PrintDefaults with double dashes.
func PrintDefaults(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  --%s", f.Name)
		if name != "" {
			fmt.Fprintf(w, " %s", name)
		}
		fmt.Fprintf(w, "\n    \t%s (env %s)", strings.ReplaceAll(usage, "\n", "\n    \t"), EnvName(f.Name))
		if f.DefValue != "" {
			fmt.Fprintf(w, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// Redacted returns the effective value of each flag of fs as Redact shows
// it: secrets replaced by "REDACTED", credentials in URLs hidden.
func Redacted(fs *flag.FlagSet) map[string]string {
	out := make(map[string]string)
	fs.VisitAll(func(f *flag.Flag) { out[f.Name] = Redact(f.Name, f.Value.String()) })
	return out
}

// IsSecret reports whether the flag holds a secret (a key, token or
// password): its name ends in "key", "token", "secret" or "password".
func IsSecret(flagName string) bool {
	for _, s := range []string{"key", "token", "secret", "password"} {
		if strings.HasSuffix(flagName, s) {
			return true
		}
	}
	return false
}
