//go:build !linux

package diag

import (
	"fmt"
	"runtime"
)

// ListenBacklogs is Linux only (sock_diag netlink); elsewhere it fails.
func ListenBacklogs(port uint16) (map[string]int64, error) {
	return nil, fmt.Errorf("sock_diag not supported on %s", runtime.GOOS)
}
