//go:build !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package rstpool

import (
	"context"
	"syscall"
	"time"
)

// canPeek is false: this platform offers no non-blocking, non-consuming
// peek through the runtime's poller (Windows sockets are overlapped), so a
// Conn checks nothing before a write, Check reports HealthUnknown, and
// checkouts ping where they can.
const canPeek = false

func (c *Conn) peekFD(fd uintptr) {}

func (c *Conn) pendingVerdict() Health { return HealthUnknown }

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
