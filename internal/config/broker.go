package config

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// Broker selects the engine behind the hub.
type Broker struct {
	// URL is "memory" (default), "redis://host:port/db" or "nats://host:port":
	// the first --broker.
	URL string
	// URLs are all the --broker values, when the flag is repeated (shard k
	// of Shards is on URLs[k mod len(URLs)]); empty means URL alone.
	URLs []string
	// Shards is how many logs topics are spread over (--broker-shards).
	Shards int
	// Reshard allows Shards to differ from the count the broker recorded
	// (--broker-reshard): the migration of docs/scaling.md.
	Reshard bool
	// DataDir, when set with the memory broker, keeps history on disk.
	DataDir string
	// Prefix starts every Redis key of the deployment (redis:// only).
	Prefix string
	// Stream names the JetStream stream (nats:// only).
	Stream string
	// Replicas of the JetStream stream in a NATS cluster (nats:// only).
	Replicas int
	// Timeout bounds each broker request (nats:// only).
	Timeout time.Duration
	// NodeID names this node among those sharing the broker: its running
	// work (chat answers, demo tasks) is journaled under it, and ended
	// with an "interrupted" event when a node of that name starts after a
	// crash. Empty: derived (see the flag's help).
	NodeID string
}

func (c *Broker) register(fs *flag.FlagSet) {
	fs.Var(&brokerURLs{c}, "broker", "event broker: memory, redis://host:port/db or nats://host:port; repeat it to put shards on several Redis or NATS deployments (shard k on the k-th modulo their number)")
	c.URL = "memory"
	fs.IntVar(&c.Shards, "broker-shards", 1, "number of shards (logs) topics are spread over by a hash of their name, the same on every node: each shard is a Redis hash tag or a JetStream stream of its own; changing it is a migration (docs/scaling.md)")
	fs.BoolVar(&c.Reshard, "broker-reshard", false, "allow --broker-shards to differ from the number of shards the broker recorded (a node refuses to start otherwise): the migration of docs/scaling.md, with every node stopped first")
	fs.StringVar(&c.DataDir, "data-dir", "", "directory for durable history (embedded store); empty keeps history in memory")
	fs.StringVar(&c.Prefix, "broker-prefix", "herald", "Redis broker: prefix of every key (all nodes of a deployment use the same; keys are {prefix}:...)")
	fs.StringVar(&c.Stream, "broker-stream", "HERALD", "NATS broker: JetStream stream name (all nodes of a deployment use the same; subjects are <stream>.>)")
	fs.IntVar(&c.Replicas, "broker-replicas", 1, "NATS broker: replicas of the stream in a JetStream cluster")
	fs.DurationVar(&c.Timeout, "broker-timeout", 5*time.Second, "NATS broker: deadline of each publish or read while NATS is unreachable (then 503)")
	fs.StringVar(&c.NodeID, "node-id", "", "this node's name, stable across restarts and unique among the nodes sharing a Redis or NATS broker: the chat answers and demo tasks it runs are recorded under it, and a node of that name starting after a crash ends them with an interrupted event; empty: the host name and the --addr port (a random name when the port is 0)")
}

// brokerURLs is the --broker flag: the first value replaces the default,
// each repetition adds a URL. (Not comma-separated: a NATS URL holds
// commas.)
type brokerURLs struct{ c *Broker }

func (v *brokerURLs) String() string {
	if v.c == nil {
		return "memory"
	}
	if len(v.c.URLs) > 1 {
		return strings.Join(v.c.URLs, " ")
	}
	return v.c.URL
}

func (v *brokerURLs) Set(s string) error {
	s = strings.TrimSpace(s)
	if len(v.c.URLs) == 0 {
		v.c.URL = s
	}
	v.c.URLs = append(v.c.URLs, s)
	return nil
}

func (v *brokerURLs) list() []string { return v.c.URLs }
func (v *brokerURLs) sep() string    { return " " }

// All returns every broker URL (URLs, or URL alone).
func (c *Broker) All() []string {
	if len(c.URLs) > 0 {
		return c.URLs
	}
	return []string{c.URL}
}

func (c *Broker) validate() error {
	if len(c.URLs) > 1 {
		scheme := func(u string) string { s, _, _ := strings.Cut(u, ":"); return strings.TrimSuffix(s, "s") }
		for _, u := range c.URLs[1:] {
			if scheme(u) != scheme(c.URLs[0]) || c.URLs[0] == "memory" {
				return errors.New("broker: repeated --broker values must all be redis:// or all nats:// URLs")
			}
		}
		if len(c.URLs) > c.Shards {
			return fmt.Errorf("broker: %d --broker URLs for %d shards: give --broker-shards at least as many", len(c.URLs), c.Shards)
		}
	}
	if c.Shards < 1 || c.Shards > 256 {
		return fmt.Errorf("broker-shards: %d is not between 1 and 256", c.Shards)
	}
	switch {
	case c.URL == "" || c.URL == "memory":
	case strings.HasPrefix(c.URL, "redis://"), strings.HasPrefix(c.URL, "rediss://"), strings.HasPrefix(c.URL, "nats://"), strings.HasPrefix(c.URL, "tls://"):
		if c.DataDir != "" {
			return errors.New("data-dir: only for the embedded broker (--broker memory); " + c.URL[:strings.Index(c.URL, ":")] + " keeps history in its own engine")
		}
	default:
		return errors.New("broker: " + c.URL + " is not memory, redis://host:port/db or nats://host:port")
	}
	var errs []error
	if c.Prefix == "" || strings.ContainsAny(c.Prefix, "{}#") {
		errs = append(errs, fmt.Errorf("broker-prefix: %q must be non-empty without '{', '}' or '#'", c.Prefix))
	}
	if !validStream(c.Stream) {
		errs = append(errs, fmt.Errorf("broker-stream: %q: use 1 to 128 letters, digits, '-' or '_'", c.Stream))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("broker-replicas: %d is not between 1 and 5", c.Replicas))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("broker-timeout: must be positive, got %s", c.Timeout))
	}
	if c.NodeID != "" && !validNodeID(c.NodeID) {
		errs = append(errs, fmt.Errorf("node-id: %q: use 1 to 128 letters, digits, '.', '_', ':' or '-'", c.NodeID))
	}
	return errors.Join(errs...)
}

func validNodeID(s string) bool {
	if len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

func validStream(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
