package config

import (
	"errors"
	"flag"
	"strings"
)

// Broker selects the engine behind the hub.
type Broker struct {
	// URL is "memory" (default), "redis://host:port/db" or "nats://host:port".
	URL string
	// DataDir, when set with the memory broker, keeps history on disk.
	DataDir string
}

func (c *Broker) register(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "broker", "memory", "event broker: memory, redis://host:port/db or nats://host:port")
	fs.StringVar(&c.DataDir, "data-dir", "", "directory for durable history (embedded store); empty keeps history in memory")
}

func (c *Broker) validate() error {
	switch {
	case c.URL == "" || c.URL == "memory":
	case strings.HasPrefix(c.URL, "redis://"), strings.HasPrefix(c.URL, "rediss://"), strings.HasPrefix(c.URL, "nats://"), strings.HasPrefix(c.URL, "tls://"):
		if c.DataDir != "" {
			return errors.New("data-dir: only for the embedded broker (--broker memory); " + c.URL[:strings.Index(c.URL, ":")] + " keeps history in its own engine")
		}
	default:
		return errors.New("broker: " + c.URL + " is not memory, redis://host:port/db or nats://host:port")
	}
	return nil
}
