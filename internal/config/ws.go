package config

import "flag"

// WS configures the WebSocket transport and client-to-server messages.
type WS struct{}

func (c *WS) register(fs *flag.FlagSet) {}
func (c *WS) validate() error           { return nil }
