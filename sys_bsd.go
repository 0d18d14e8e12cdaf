//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package rstpool

import (
	"context"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const canPeek = true

// peekFD peeks at one byte without blocking or consuming it. These systems
// have no portable TCP state query, so a FIN behind pending data stays
// unseen until the data is read.
func (c *Conn) peekFD(fd uintptr) {
	n, _, err := unix.Recvfrom(int(fd), c.peekBuf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	c.peekN, c.peekErr = n, err
}

func (c *Conn) pendingVerdict() Health { return HealthPending }

// bytesAcked is not known here: the evidence of an idle death falls back
// to the first write after a quiet spell.
func (c *Conn) bytesAcked() (int64, bool) { return 0, false }

// withUserTimeout leaves the Control functions as they are: only Linux has
// TCP_USER_TIMEOUT, so UserTimeout is ignored here.
func withUserTimeout(control func(network, address string, c syscall.RawConn) error,
	controlCtx func(ctx context.Context, network, address string, c syscall.RawConn) error,
	_ time.Duration) (func(string, string, syscall.RawConn) error, func(context.Context, string, string, syscall.RawConn) error) {
	return control, controlCtx
}
