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

// unsilence takes c out of repair mode: it carries bytes again. Leaving
// repair mode clears the socket's SO_REUSEADDR, which would keep the
// proxy from listening again on its port after a restart: it is set again.
func unsilence(c *net.TCPConn) {
	if raw, err := c.SyscallConn(); err == nil {
		_ = raw.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_TCP, unix.TCP_REPAIR, 0)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		})
	}
}
