package config

import (
	"flag"
	"time"
)

// HTTP configures TLS, HTTP/2, CORS and connection limits.
type HTTP struct {
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
}

func (c *HTTP) register(fs *flag.FlagSet) {
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "time allowed to read a request's headers (slowloris guard)")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 120*time.Second, "how long an idle keep-alive connection (not a stream) stays open")
}
func (c *HTTP) validate() error { return nil }
