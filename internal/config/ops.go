package config

import "flag"

// Ops configures the dashboard, the admin API and the config file.
type Ops struct{}

func (c *Ops) register(fs *flag.FlagSet) {}
func (c *Ops) validate() error           { return nil }
