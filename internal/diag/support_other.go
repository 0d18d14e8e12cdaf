//go:build !linux

package diag

import (
	"fmt"
	"runtime"
)

// HostSupported reports whether the host diagnostics (doctor, watch) can
// run on this operating system: they read /proc and capture with AF_PACKET,
// which only Linux has.
func HostSupported() error { return fmt.Errorf("not supported on %s", runtime.GOOS) }
