//go:build linux

package faultproxy

import (
	"net"

	"golang.org/x/sys/unix"
)

// silence puts c in TCP repair mode, in which closing it sends nothing:
// its peer's next bytes reach no socket. It reports false where the
// process may not (no CAP_NET_ADMIN).
func silence(c *net.TCPConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_TCP, unix.TCP_REPAIR, 1) }); err != nil {
		return false
	}
	return serr == nil
}
