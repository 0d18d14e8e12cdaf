//go:build linux

package rstpool

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const canPeek = true

// peekFD peeks at one byte without blocking or consuming it and, when data
// is pending, reads the TCP state to see a FIN queued behind the data.
func (c *Conn) peekFD(fd uintptr) {
	// A raw recvfrom without an address buffer: unix.Recvfrom would
	// allocate one on every check.
	n, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&c.peekBuf[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		c.peekN, c.peekErr = 0, errno
		return
	}
	c.peekN, c.peekErr = int(n), nil
	if n > 0 {
		c.state = tcpState(int(fd))
	}
}

// Linux TCP states (include/net/tcp_states.h).
const (
	tcpEstablished = 1
	tcpClose       = 7
	tcpCloseWait   = 8
)

func tcpState(fd int) uint8 {
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0 // not TCP (a Unix socket) or not available
	}
	return info.State
}

// pendingVerdict reads the TCP state taken with the peek.
func (c *Conn) pendingVerdict() Health {
	switch c.state {
	case tcpCloseWait:
		return HealthClosed
	case tcpClose:
		return HealthReset
	}
	return HealthPending
}
