package config

import "flag"

// Chat configures AI chat streaming.
type Chat struct{}

func (c *Chat) register(fs *flag.FlagSet) {}
func (c *Chat) validate() error           { return nil }
