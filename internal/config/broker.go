package config

import "flag"

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

func (c *Broker) validate() error { return nil }
