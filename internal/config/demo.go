package config

import "flag"

// Demo configures the built-in demo.
type Demo struct{}

func (c *Demo) register(fs *flag.FlagSet) {}
func (c *Demo) validate() error           { return nil }
