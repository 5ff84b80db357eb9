package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Exit codes of the commands that talk to a server (publish, subscribe).
const (
	exitError       = 1 // the server refused, or something else failed
	exitUsage       = 2 // bad flags or arguments
	exitUnreachable = 3 // the server could not be reached
)

// defaultServer is the server publish and subscribe talk to by default.
const defaultServer = "http://localhost:8080"

// repeated is a flag that may be given several times; values are kept
// whole (a topic may contain a comma).
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, " ") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// clientFlags are the flags every command that talks to a server has.
type clientFlags struct {
	server string
	topics repeated
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", defaultServer, "base URL of the Herald server (env HERALD_SERVER)")
	fs.Var(&c.topics, "topic", "topic; repeat the flag for several")
}

// parse parses args into fs and checks the common flags. The server comes
// from --server, else HERALD_SERVER, else the default.
// Help goes to standard output; a flag error is reported once, on standard
// error, with a pointer to the help.
func (c *clientFlags) parse(fs *flag.FlagSet, env *Env, args []string) error {
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		usage()
		return err
	} else if err != nil {
		return usageErr("%v (see 'herald %s --help')", err, fs.Name())
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "server" })
	if v := env.Getenv("HERALD_SERVER"); !set && v != "" {
		c.server = v
	}
	u, err := url.Parse(c.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageErr("--server: %q is not an http:// or https:// URL", c.server)
	}
	if len(c.topics) == 0 {
		return usageErr("missing --topic")
	}
	return nil
}

func usageErr(format string, args ...any) error {
	return &ExitError{Code: exitUsage, Err: fmt.Errorf(format, args...)}
}

// unreachable is the error of a server that could not be reached.
type unreachable struct {
	server string
	err    error
}

func (e *unreachable) Error() string {
	return fmt.Sprintf("cannot reach the Herald server at %s: %v", e.server, e.err)
}
func (e *unreachable) Unwrap() error { return e.err }

// transportCause strips the request description from a transport error:
// "dial tcp 127.0.0.1:1: connect: connection refused".
func transportCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// isTransport reports whether err is a failure to exchange a request with
// the server (as opposed to an answer the server gave).
func isTransport(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue)
}

// statusMessage describes a refusal: "400 Bad Request: missing topic".
func statusMessage(code int, msg string) string {
	s := fmt.Sprintf("%d %s", code, http.StatusText(code))
	if msg != "" {
		s += ": " + msg
	}
	return s
}

// exitFor gives an error of publish or subscribe its exit code.
func exitFor(err error) error {
	var u *unreachable
	var ee *ExitError
	switch {
	case err == nil, errors.As(err, &ee):
		return err
	case errors.As(err, &u):
		return &ExitError{Code: exitUnreachable, Err: err}
	case errors.Is(err, context.Canceled):
		return nil
	}
	return &ExitError{Code: exitError, Err: err}
}

// clientUsage returns a usage function for a command with the given
// synopsis and description.
func clientUsage(w io.Writer, fs *flag.FlagSet, synopsis, text string) func() {
	return func() {
		fmt.Fprintf(w, "Usage: herald %s\n\n%s\nFlags:\n", synopsis, text)
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(w, "  --%s", f.Name)
			if name != "" {
				fmt.Fprintf(w, " %s", name)
			}
			fmt.Fprintf(w, "\n    \t%s", usage)
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(w, " (default %q)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
		fmt.Fprintf(w, "\nExit status: 0 on success, %d when the server refused or failed, %d for bad\nflags, %d when the server could not be reached.\n", exitError, exitUsage, exitUnreachable)
	}
}
