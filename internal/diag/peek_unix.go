//go:build unix

package diag

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// peek looks at a connection's receive queue without consuming it or
// blocking: errPeerFIN when the peer closed (recv returns 0), the reset
// error when a RST arrived, nil when the connection looks alive.
func peek(rc syscall.RawConn) error {
	var perr error
	var buf [1]byte
	err := rc.Control(func(fd uintptr) {
		for {
			n, _, err := unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			switch {
			case errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.EAGAIN):
			case err != nil:
				perr = err
			case n == 0:
				perr = errPeerFIN
			}
			return
		}
	})
	if err != nil {
		return err
	}
	return perr
}
