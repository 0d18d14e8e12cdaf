//go:build linux

package rstpool

import (
	"context"
	"syscall"
	"time"
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

// bytesAcked returns how many of the bytes written the peer acknowledged
// (tcp_info's bytes_acked, Linux 4.1 and later, which counts the SYN as
// one); ok is false where the socket cannot say (not TCP, closed). It runs
// on failure paths only, and after a reset too: the kernel keeps the count
// until the socket closes.
func (c *Conn) bytesAcked() (acked int64, ok bool) {
	if c.raw == nil {
		return 0, false
	}
	err := c.raw.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err == nil && info.State != 0 {
			acked, ok = max(int64(info.Bytes_acked)-1, 0), true
		}
	})
	return acked, ok && err == nil
}

// withUserTimeout chains a Control function that sets TCP_USER_TIMEOUT
// before connect, so the limit also bounds the SYN retries of the connect.
func withUserTimeout(control func(network, address string, c syscall.RawConn) error,
	controlCtx func(ctx context.Context, network, address string, c syscall.RawConn) error,
	d time.Duration) (func(string, string, syscall.RawConn) error, func(context.Context, string, string, syscall.RawConn) error) {
	if d <= 0 {
		return control, controlCtx
	}
	set := func(ctx context.Context, network, address string, c syscall.RawConn) error {
		switch {
		case controlCtx != nil:
			if err := controlCtx(ctx, network, address, c); err != nil {
				return err
			}
		case control != nil:
			if err := control(network, address, c); err != nil {
				return err
			}
		}
		return setUserTimeout(c, d)
	}
	return nil, set
}

// setUserTimeout sets TCP_USER_TIMEOUT on a raw socket, reporting the
// setsockopt error as well as the Control error.
func setUserTimeout(c syscall.RawConn, d time.Duration) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d/time.Millisecond))
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return &ConfigError{Field: "Dialer.UserTimeout", Msg: "setsockopt TCP_USER_TIMEOUT: " + serr.Error()}
	}
	return nil
}
