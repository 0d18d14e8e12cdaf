//go:build !unix

package diag

import "syscall"

// peek is not available here: the probe relies on its active checks.
func peek(syscall.RawConn) error { return nil }
