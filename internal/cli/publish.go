package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/heraldpush/herald/client"
)

func init() {
	register("publish", "publish an event to a running server and print its id", runPublish)
}

const publishText = `Publishes one event through the server's POST /publish and prints its id
once the server has it in history. --data - reads the data from standard
input, without its final line end (so "echo hi | herald publish --data -"
publishes "hi").
`

func runPublish(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "publish", "")
	var (
		cf     clientFlags
		data   = fs.String("data", "", "event data; - reads it from standard input (required)")
		event  = fs.String("event", "", `event type (default "message")`)
		retain = fs.Bool("retain", false, "make the event the topics' current state: new subscribers get it first")
		final  = fs.Bool("final", false, "end the topics: nothing may be published to them afterwards")
	)
	cf.register(fs)
	fs.Usage = clientUsage(env.Stdout, fs, "publish --topic T --data D [--event E] [--retain] [--final] [--server URL]", publishText)
	if err := cf.parse(fs, env, args); err != nil {
		return err
	}
	hasData := false
	fs.Visit(func(f *flag.Flag) { hasData = hasData || f.Name == "data" })
	if !hasData {
		return usageErr("missing --data (use --data - to read it from standard input)")
	}
	if *data == "-" {
		var b []byte
		var err error
		if env.Stdin != nil {
			b, err = io.ReadAll(env.Stdin)
		}
		if err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
		s := string(b)
		s = strings.TrimSuffix(s, "\n")
		s = strings.TrimSuffix(s, "\r")
		*data = s
	}
	id, err := client.New(cf.server, nil).Publish(ctx, cf.topics[0], *data, &client.PublishOptions{
		Topics: cf.topics[1:], Event: *event, Retain: *retain, Final: *final,
	})
	var se *client.StatusError
	switch {
	case errors.As(err, &se):
		return exitFor(fmt.Errorf("publish refused: %s", statusMessage(se.StatusCode, se.Message)))
	case err != nil && ctx.Err() != nil:
		return &ExitError{Code: exitError, Err: fmt.Errorf("publish interrupted: %w", ctx.Err())}
	case isTransport(err):
		return exitFor(&unreachable{server: cf.server, err: transportCause(err)})
	case err != nil:
		return exitFor(err)
	}
	fmt.Fprintln(env.Stdout, id)
	return nil
}
