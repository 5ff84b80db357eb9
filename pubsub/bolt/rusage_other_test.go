//go:build !unix

package bolt_test

import "time"

// cpuTime is unknown here: the CPU figure is not reported.
func cpuTime() time.Duration { return 0 }
