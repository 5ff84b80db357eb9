package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/heraldpush/herald/internal/bench"
)

func init() {
	register("bench", "load-test a Herald (or any SSE) server: latency, loss, throughput, memory", runBench)
}

func runBench(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "bench", "bench [--scenario NAME] [flags]\n\nScenarios: "+strings.Join(bench.ScenarioNames(), ", ")+
		"\nA scenario sets the defaults below; flags given explicitly override them.")
	scenario := fs.String("scenario", "", "preset: "+strings.Join(bench.ScenarioNames(), ", ")+" (empty: use the flags alone)")
	server := fs.String("server", "http://127.0.0.1:8080", "base URL of the server under test")
	transport := fs.String("transport", "sse", "subscriber transport: sse or ws")
	face := fs.String("face", "events", "SSE endpoint: events (/events), mercure (/.well-known/mercure) or demo (/sse/subscribe; its topic is fixed: for idle runs)")
	subscribers := fs.Int("subscribers", 100, "subscribers to open")
	topics := fs.Int("topics", 1, "topics to spread subscribers and events over")
	publishers := fs.Int("publishers", 1, "concurrent publishers")
	rate := fs.Float64("rate", 100, "total events per second (0: unthrottled)")
	size := fs.Int("size", 100, "payload bytes per event (at least 48)")
	duration := fs.Duration("duration", 10*time.Second, "how long to publish (or, for idle, to hold the connections)")
	batch := fs.Int("batch", 1, "events per publish request (a JSON array when above 1)")
	connRate := fs.Float64("conn-rate", 2000, "new connections per second (0: unlimited)")
	stalled := fs.Int("stalled", 0, "extra subscribers that never read (slow consumers)")
	drain := fs.Duration("drain", 2*time.Second, "how long to wait for the last events after publishing")
	pid := fs.Int("pid", 0, "PID of a local server to read CPU and memory from /proc (default: the server's /metrics)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	allowRemote := fs.Bool("allow-remote", false, "allow a server address outside the loopback range")
	if err := parseErr(fs.Parse(args)); err != nil {
		return err
	}
	cfg := bench.Config{}
	if *scenario != "" {
		preset, ok := bench.Scenarios[*scenario]
		if !ok {
			return &ExitError{Code: 2, Err: fmt.Errorf("bench: unknown scenario %q (have %s)", *scenario, strings.Join(bench.ScenarioNames(), ", "))}
		}
		cfg = preset
	} else {
		cfg = bench.Config{Subscribers: *subscribers, Topics: *topics, Publishers: *publishers, Rate: *rate, Size: *size,
			Duration: *duration, Batch: *batch, ConnRate: *connRate, Stalled: *stalled}
	}
	cfg.Server, cfg.Transport, cfg.Face, cfg.Drain, cfg.PID, cfg.AllowRemote = *server, *transport, *face, *drain, *pid, *allowRemote
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "subscribers":
			cfg.Subscribers = *subscribers
		case "topics":
			cfg.Topics = *topics
		case "publishers":
			cfg.Publishers = *publishers
		case "rate":
			cfg.Rate = *rate
		case "size":
			cfg.Size = *size
		case "duration":
			cfg.Duration = *duration
		case "batch":
			cfg.Batch = *batch
		case "conn-rate":
			cfg.ConnRate = *connRate
		case "stalled":
			cfg.Stalled = *stalled
		}
	})
	if isTerminal(env.Stderr) && !*asJSON {
		cfg.Progress = env.Stderr
	}
	var (
		res bench.Result
		err error
	)
	if *scenario != "" {
		res, err = bench.RunScenario(ctx, *scenario, cfg)
	} else {
		res, err = bench.Run(ctx, cfg)
	}
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	printResult(env.Stdout, &res)
	if !res.OK() {
		return &ExitError{Code: 3, Err: fmt.Errorf("bench: %d lost, %d duplicated, %d out of order", res.Lost, res.Duplicated, res.OutOfOrder)}
	}
	return nil
}

func printResult(w io.Writer, r *bench.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	if r.Scenario != "" {
		row("scenario", r.Scenario)
	}
	row("server", r.Server+" ("+r.Transport+")")
	row("subscribers / topics / publishers", fmt.Sprintf("%d / %d / %d", r.Subscribers, r.Topics, r.Publishers))
	row("duration", fmt.Sprintf("%.1fs", r.Seconds))
	row("published", fmt.Sprintf("%d (%.0f/s), %d errors", r.Published, r.PublishRate, r.PublishErrors))
	row("delivered", fmt.Sprintf("%d of %d expected (%.0f/s)", r.Received, r.Expected, r.DeliveryRate))
	row("lost / duplicated / out of order", fmt.Sprintf("%d / %d / %d", r.Lost, r.Duplicated, r.OutOfOrder))
	row("latency p50 / p90 / p99 / max", fmt.Sprintf("%.2f / %.2f / %.2f / %.2f ms", r.LatencyP50, r.LatencyP90, r.LatencyP99, r.LatencyMax))
	row("connect errors / disconnects", fmt.Sprintf("%d / %d", r.ConnectErrors, r.Disconnects))
	if r.ServerCPUSeconds > 0 {
		row("server CPU", fmt.Sprintf("%.2fs (%.2f µs per delivery)", r.ServerCPUSeconds, r.CPUPerDeliveryMicros))
	}
	if r.ServerRSSBytes > 0 {
		row("server RSS", fmt.Sprintf("%.1f MiB", float64(r.ServerRSSBytes)/(1<<20)))
	}
	if r.RSSPerConnBytes > 0 {
		row("RSS per connection", fmt.Sprintf("%.1f KiB", r.RSSPerConnBytes/1024))
	}
	for k, v := range r.Extra {
		row(k, fmt.Sprintf("%.3f", v))
	}
	tw.Flush()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
