package securitytest_test

import (
	"testing"

	"github.com/heraldpush/herald/internal/apptest"
	"github.com/heraldpush/herald/internal/config"
)

// startWith starts a server with the defaults changed by mutate.
func startWith(t *testing.T, mutate func(*config.Server)) *apptest.Server {
	t.Helper()
	return apptest.Start(t, mutate)
}
