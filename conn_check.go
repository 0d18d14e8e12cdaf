package rstpool

import (
	"crypto/tls"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/rstpool/rstpool/internal/rule"
)

// Health is what a liveness check learned about a connection's peer.
type Health uint8

// The outcomes of a liveness check: "unknown", "alive", "pending",
// "closed", "reset". They are the checkout rule's own values.
const (
	// HealthUnknown: the platform cannot check without reading (no
	// non-consuming peek), or the check itself failed.
	HealthUnknown = Health(rule.Unknown)
	// HealthAlive: nothing arrived while the connection was idle.
	HealthAlive = Health(rule.Alive)
	// HealthPending: the peer sent data that nobody has read yet, and no
	// FIN is known to follow it. Some protocols do this legitimately (TLS
	// session tickets and key updates, HTTP/2 frames, PostgreSQL notices),
	// so a Conn lets the Write go on; a pool that knows its protocol is
	// strictly request-response treats it as a broken connection or pings.
	HealthPending = Health(rule.Pending)
	// HealthClosed: the peer's FIN arrived, possibly behind pending data
	// (PostgreSQL's idle_session_timeout writes a FATAL message, then
	// closes). Linux reads this from the socket's TCP state
	// (CLOSE_WAIT), which needs no data read and so is also safe under TLS.
	HealthClosed = Health(rule.Closed)
	// HealthReset: an RST arrived, or the kernel ended a connection whose
	// peer stayed silent (keepalive probes or TCP_USER_TIMEOUT: ETIMEDOUT).
	// The error says which.
	HealthReset = Health(rule.Reset)
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

// health peeks at c for the checkout rule: a check that could not run on a
// socket that can be peeked at means it is closed or broken.
func (c *Conn) health() rule.Health {
	h, err := c.Check()
	if h == HealthUnknown && err != nil {
		return rule.Reset
	}
	return rule.Health(h)
}

// checkBeforeWrite runs the checks for the first Write after a quiet
// spell: a retirement by the consumer that handed the connection out, then
// the socket. A FIN the application already read does not stop the write:
// a peer that half-closed may still read. The connection is left open for
// its client to close its own way, as after any failed write.
func (c *Conn) checkBeforeWrite() error {
	if c.closed.Load() {
		return nil // the Write reports net.ErrClosed itself
	}
	if r := c.retired.Swap(nil); r != nil {
		e := c.newError("validate", r.err)
		c.failure.CompareAndSwap(nil, e) // the streams its client then closes say why
		return e
	}
	if !c.peek || c.leaving.Load() {
		return nil
	}
	why := goneErr(c.Check())
	if why == nil || (why == ErrPeerClosed && c.eof.Load()) {
		return nil
	}
	// Remembered as the peer's failure; a new connection closed before its
	// first work counts as a connect reset.
	return c.fail("validate", why)
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

// facts returns what the checkout rule knows of c at now (a mono time the
// caller read), idle for idle, as handed out through nc.
func (c *Conn) facts(now int64, idle time.Duration, nc net.Conn) rule.Conn {
	return rule.Conn{
		Idle:       idle,
		Age:        time.Duration(now - c.created),
		PeerClosed: c.eof.Load(),
		Peekable:   c.raw != nil && canPeek,
		Framed:     framed(nc),
	}
}

// framed reports whether a TLS layer sits between nc and the socket.
func framed(nc net.Conn) bool {
	for range 4 {
		switch c := nc.(type) {
		case *tls.Conn:
			return true
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		default:
			return false
		}
	}
	return false
}
