package cli

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

func init() {
	register("health", "check a running server's /healthz (for container health checks)", runHealth)
}

func runHealth(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "health", "health [--url URL]")
	url := fs.String("url", "http://127.0.0.1:8080/healthz", "health endpoint to check")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for an answer")
	if err := parseErr(fs.Parse(args)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: %s answered %s", *url, resp.Status)
	}
	fmt.Fprintln(env.Stdout, "healthy")
	return nil
}
