//go:build !linux

// Package netns creates throwaway Linux network namespaces for tests. On
// other systems it only reports that it cannot.
package netns

import (
	"fmt"
	"runtime"
	"testing"
)

// Available reports that network namespaces are Linux only.
func Available() error { return fmt.Errorf("netns: not supported on %s", runtime.GOOS) }

// SkipUnlessAvailable skips the test with Available's reason.
func SkipUnlessAvailable(t testing.TB) {
	t.Helper()
	t.Skip(Available().Error())
}
