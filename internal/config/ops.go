package config

import "flag"

// Ops configures the dashboard and the admin API.
type Ops struct {
	// AdminToken guards the admin API and the dashboard. Without it they
	// are open to loopback clients that no proxy forwarded only (and
	// state-changing requests to Herald's own origin).
	AdminToken string
	// Dashboard serves /dashboard even outside development mode.
	Dashboard bool
}

func (c *Ops) register(fs *flag.FlagSet) {
	fs.StringVar(&c.AdminToken, "admin-token", "", "token for the admin API and the dashboard (Authorization: Bearer, or ?token= for the dashboard page); without it they answer only loopback clients that no proxy forwarded, and purge/disconnect only from Herald's own origin")
	fs.BoolVar(&c.Dashboard, "dashboard", false, "serve the live dashboard at /dashboard (always on in development mode, i.e. without JWT keys)")
}

func (c *Ops) validate() error { return nil }
