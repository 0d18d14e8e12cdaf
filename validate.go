package rstpool

import (
	"os"
	"syscall"
)

// Health is what a liveness check learned about a connection's peer.
type Health uint8

// The outcomes of a liveness check.
const (
	// HealthUnknown: the platform cannot check without reading (no
	// non-consuming peek), or the check itself failed.
	HealthUnknown Health = iota
	// HealthAlive: nothing arrived while the connection was idle.
	HealthAlive
	// HealthPending: the peer sent data that nobody has read yet, and no
	// FIN is known to follow it. Some protocols do this legitimately (TLS
	// session tickets and key updates, HTTP/2 frames, PostgreSQL notices),
	// so a Conn lets the Write go on; a pool that knows its protocol is
	// strictly request-response treats it as a broken connection or pings.
	HealthPending
	// HealthClosed: the peer's FIN arrived, possibly behind pending data
	// (PostgreSQL's idle_session_timeout writes a FATAL message, then
	// closes). Linux reads this from the socket's TCP state
	// (CLOSE_WAIT), which needs no data read and so is also safe under TLS.
	HealthClosed
	// HealthReset: an RST arrived, or the kernel ended a connection whose
	// peer stayed silent (keepalive probes or TCP_USER_TIMEOUT: ETIMEDOUT).
	// The error says which.
	HealthReset
)

var healthNames = [...]string{"unknown", "alive", "pending", "closed", "reset"}

// String names the outcome.
func (h Health) String() string {
	if int(h) < len(healthNames) {
		return healthNames[h]
	}
	return "unknown"
}

// Check looks at the connection's socket without consuming anything: a
// non-blocking recvfrom with MSG_PEEK through RawConn.Control (not
// RawConn.Read, which would wait behind net/http's pending Read), plus, on
// Linux, the TCP state when data is pending. It costs about a microsecond.
// The error is the socket's error for HealthReset, or why the check could
// not run for HealthUnknown.
func (c *Conn) Check() (Health, error) {
	if c.raw == nil || !canPeek {
		return HealthUnknown, nil
	}
	c.checkMu.Lock()
	defer c.checkMu.Unlock()
	if c.final != HealthUnknown {
		return c.final, c.finalErr // the kernel reports a socket error only once
	}
	c.peekN, c.peekErr, c.state = 0, nil, 0
	if err := c.raw.Control(c.peekFn); err != nil {
		return HealthUnknown, err
	}
	h, err := c.verdict()
	if h == HealthClosed || h == HealthReset {
		c.final, c.finalErr = h, err
	}
	return h, err
}

func (c *Conn) verdict() (Health, error) {
	errno, _ := c.peekErr.(syscall.Errno)
	switch {
	case c.peekErr == nil && c.peekN == 0:
		return HealthClosed, nil
	case c.peekErr == nil:
		return c.pendingVerdict(), nil
	case errno == syscall.EAGAIN || errno == syscall.EWOULDBLOCK:
		return HealthAlive, nil
	case errno != 0 && errnoClass(errno) != ClassNone:
		// The socket holds an error: an RST, or the kernel gave up on a
		// silent peer (keepalive or user timeout: ETIMEDOUT).
		return HealthReset, os.NewSyscallError("recvfrom", c.peekErr)
	}
	return HealthUnknown, os.NewSyscallError("recvfrom", c.peekErr)
}

// checkBeforeWrite runs the checks for the first Write after a quiet
// spell: a retirement by the consumer that handed the connection out, then
// the peer's FIN already read, then the socket. A connection whose peer is
// gone is closed; a retired one is left for its client to close its own way.
func (c *Conn) checkBeforeWrite() error {
	if c.closed.Load() {
		return nil // the Write reports net.ErrClosed itself
	}
	if r := c.retired.Swap(nil); r != nil {
		return c.newError("validate", r.err)
	}
	var why error
	switch {
	case c.eof.Load():
		why = ErrPeerClosed
	case c.peek:
		why = goneErr(c.Check())
	}
	if why == nil {
		return nil
	}
	e := c.newError("validate", why)
	c.failure.CompareAndSwap(nil, e)
	c.closed.Store(true)
	_ = c.nc.Close()
	return e
}

// goneErr returns why a Check's outcome says the peer is gone, or nil when
// it may be alive.
func goneErr(h Health, err error) error {
	switch h {
	case HealthClosed:
		return ErrPeerClosed
	case HealthReset:
		return err
	}
	return nil
}
