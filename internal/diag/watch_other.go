//go:build !linux

package diag

import (
	"context"
	"fmt"
	"runtime"
)

// A Capture receives the TCP segments of one port; Linux only.
type Capture struct{}

// OpenCapture fails: packet capture uses Linux AF_PACKET sockets.
func OpenCapture(port uint16) (*Capture, error) {
	return nil, fmt.Errorf("watch: not supported on %s", runtime.GOOS)
}

// Run is never reached on this system.
func (c *Capture) Run(ctx context.Context, onRST func(RSTEvent)) (WatchSummary, error) {
	return WatchSummary{}, fmt.Errorf("watch: not supported on %s", runtime.GOOS)
}

// Close does nothing.
func (c *Capture) Close() error { return nil }
