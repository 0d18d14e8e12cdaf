//go:build unix

package integration

import (
	"os"
	"strconv"
	"syscall"
)

// keepInheritedFDs marks every descriptor the test process inherited
// (fds 3 and up; Go opens its own with close-on-exec) close-on-exec, so
// that a server a restart test starts does not inherit one: a lock taken
// with flock(1) around `go test` would otherwise stay held by PostgreSQL's
// postmaster after the tests end, and block every other client of the
// lock. It reads /proc/self/fd, and does nothing where that is absent.
func keepInheritedFDs() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}
