//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package rstpool

import "golang.org/x/sys/unix"

const canPeek = true

// peekFD peeks at one byte without blocking or consuming it. These systems
// have no portable TCP state query, so a FIN behind pending data stays
// unseen until the data is read.
func (c *Conn) peekFD(fd uintptr) {
	n, _, err := unix.Recvfrom(int(fd), c.peekBuf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
	c.peekN, c.peekErr = n, err
}

func (c *Conn) pendingVerdict() Health { return HealthPending }
