//go:build !linux && !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package rstpool

// canPeek is false: this platform offers no non-blocking, non-consuming
// peek through the runtime's poller (Windows sockets are overlapped), so a
// Conn checks before a write only what a Read already saw, Check reports
// HealthUnknown, and checkouts ping where they can.
const canPeek = false

func (c *Conn) peekFD(fd uintptr) {}

func (c *Conn) pendingVerdict() Health { return HealthUnknown }
