//go:build linux

package rstpool

import (
	"context"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

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
