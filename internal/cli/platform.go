package cli

import (
	"fmt"
	"runtime"
)

const (
	goos   = runtime.GOOS
	goarch = runtime.GOARCH
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
