package config

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Demo configures the built-in demo: the page at / and the endpoints of
// the seed article's SseEmitter demo (/sse/subscribe, /sse/broadcast,
// /sse/start-task, /sse/tasks).
type Demo struct {
	// Enabled serves the demo. Default true.
	Enabled bool
	// TaskInterval is the time between two progress steps of a simulated
	// task. Default 1s.
	TaskInterval time.Duration
	// MaxTasks bounds the tasks running at once. Default 100.
	MaxTasks int
	// MaxMessageBytes bounds a broadcast message. Default 4 KiB.
	MaxMessageBytes ByteSize
}

func (c *Demo) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.Enabled, "demo", true, "serve the built-in demo: the page at / and /sse/subscribe, /sse/broadcast, /sse/start-task (open to anyone, bounded by --demo-max-message-bytes and --publish-rate: turn it off on a public server)")
	fs.DurationVar(&c.TaskInterval, "demo-task-interval", time.Second, "time between two progress events of a demo task (/sse/start-task)")
	fs.IntVar(&c.MaxTasks, "demo-max-tasks", 100, "most demo tasks running at once; /sse/start-task answers 429 beyond it")
	c.MaxMessageBytes = 4 << 10
	fs.Var(&c.MaxMessageBytes, "demo-max-message-bytes", "largest /sse/broadcast message (413 beyond); demo writes also count against --publish-rate")
}

func (c *Demo) validate() error {
	var errs []error
	if c.TaskInterval <= 0 || c.TaskInterval > time.Hour {
		errs = append(errs, fmt.Errorf("demo-task-interval: must be between 1ns and 1h, got %s", c.TaskInterval))
	}
	if c.MaxMessageBytes <= 0 || c.MaxMessageBytes > 1<<20 {
		errs = append(errs, fmt.Errorf("demo-max-message-bytes: must be between 1 and 1MiB, got %d", c.MaxMessageBytes))
	}
	if c.MaxTasks <= 0 {
		errs = append(errs, fmt.Errorf("demo-max-tasks: must be positive, got %d", c.MaxTasks))
	}
	return errors.Join(errs...)
}
