package cluster_test

import "go.uber.org/goleak"

// checkLeaks reports goroutines that outlived the package's tests (run from
// TestMain, after idle HTTP connections are closed).
func checkLeaks() error { return goleak.Find() }
