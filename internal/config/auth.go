package config

import "flag"

// Auth configures token verification and access rules.
type Auth struct{}

func (c *Auth) register(fs *flag.FlagSet) {}
func (c *Auth) validate() error           { return nil }

// Enabled reports whether token authentication is configured. Without it
// the server runs in development mode.
func (c *Auth) Enabled() bool { return false }
