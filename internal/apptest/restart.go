package apptest

import (
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/config"
)

// Restart stops s and starts a new server with the same configuration on
// the same address, as a process restart would: an in-memory broker starts
// over (a new epoch), a durable one keeps its log. Pages and clients of s
// reconnect to the new server by themselves.
func (s *Server) Restart(t testing.TB) *Server {
	t.Helper()
	addr := s.URL[strings.Index(s.URL, "://")+3:]
	cfg := s.Cfg
	s.Stop()
	return StartLogger(t, Logger(t), func(c *config.Server) {
		*c = cfg
		c.Core.Addr = addr
	})
}
