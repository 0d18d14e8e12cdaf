package rstpool

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"
)

// Errors a tracked connection's check before use reports, wrapped in a
// *ConnError with Op "validate" and Written 0.
var (
	// ErrIdleLimit: the connection sat idle longer than its idle limit.
	ErrIdleLimit = errors.New("rstpool: connection idle beyond its limit")
	// ErrMaxLifetime: the connection is older than its maximum lifetime.
	ErrMaxLifetime = errors.New("rstpool: connection older than its maximum lifetime")
	// ErrPeerClosed: the peer's FIN arrived while the connection was idle.
	ErrPeerClosed = errors.New("rstpool: peer closed the connection while it was idle")
)

// A ConnError is a failure on a tracked connection. It records what the
// connection had done before the failure so the caller, or a retry policy,
// can tell a reused connection reaped while idle from a peer that died in
// the middle of an exchange. errors.Is and errors.As see through it to the
// underlying error (syscall.ECONNRESET, os.ErrDeadlineExceeded …).
type ConnError struct {
	Op      string        // "dial", "read", "write" or "validate"
	Class   Class         // what happened on the wire
	Reused  bool          // the connection had completed at least one exchange before
	Idle    time.Duration // how long it sat idle before the exchange that failed
	Age     time.Duration // time since the connection was established
	Written int64         // bytes of the failed exchange handed to the kernel; 0: the request never left
	Err     error         // the underlying error

	// Addr is the remote address, when known.
	Addr string

	// readBack is how many bytes of the failed exchange had been read
	// when it failed: a reset while writing after the peer answered is a
	// close with unread data.
	readBack int64
	// afterIdle: the exchange started after a gap long enough that the
	// connection was checked (or would have been) before use.
	afterIdle bool
}

func (e *ConnError) Error() string {
	var b strings.Builder
	b.WriteString("rstpool: ")
	b.WriteString(e.Op)
	if e.Addr != "" {
		b.WriteString(" ")
		b.WriteString(e.Addr)
	}
	fmt.Fprintf(&b, ": %s (", e.Class)
	if e.Op != "dial" {
		if e.Reused {
			b.WriteString("reused, ")
		} else {
			b.WriteString("fresh, ")
		}
		fmt.Fprintf(&b, "idle %s, age %s, %d bytes written", round(e.Idle), round(e.Age), e.Written)
	}
	if c := e.Cause(); c != CauseUnknown {
		if e.Op != "dial" {
			b.WriteString("; ")
		}
		b.WriteString("likely ")
		b.WriteString(c.String())
	}
	b.WriteString(")")
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Microsecond)
	}
	return d
}

// Unwrap returns the underlying error.
func (e *ConnError) Unwrap() error { return e.Err }

// Timeout reports whether the underlying error is a timeout, so that a
// *ConnError still satisfies callers that test net.Error.
func (e *ConnError) Timeout() bool {
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// Temporary reports whether the underlying error says it is temporary.
//
// Deprecated: as for net.Error, temporary errors are not well defined.
func (e *ConnError) Temporary() bool {
	var ne interface{ Temporary() bool }
	return errors.As(e.Err, &ne) && ne.Temporary()
}

// NothingWritten reports whether the failed exchange had put no byte on the
// wire, so that repeating it on another connection cannot duplicate it.
func (e *ConnError) NothingWritten() bool { return e.Written == 0 && e.Op != "dial" }

// A Cause is the likely reason for a failure, read from its timing pattern.
type Cause uint8

// The causes rstpool recognizes, in the order of how often they explain
// resets in service-to-service traffic.
const (
	CauseUnknown      Cause = iota
	CauseIdleReaped         // a hop reaped the connection while it sat idle; the client reused it
	CausePeerDied           // the peer or a middlebox dropped the connection mid-exchange
	CauseUnreadData         // the server answered and closed while the client was still sending
	CauseNotListening       // nothing listened at the address: a restart or a wrong port
	CauseBlackHole          // packets vanished without a reset
)

var causeText = [...]struct{ name, advice string }{
	CauseUnknown: {"unknown", "No timing pattern stands out; look at the class and the peer's logs."},
	CauseIdleReaped: {"idle connection reaped by a hop",
		"Keep the client idle timeout below every hop's (Chain.Check) and retry idempotent requests once."},
	CausePeerDied: {"peer or middlebox dropped the connection mid-exchange",
		"Check the peer for restarts and crashes; retry idempotent work on a new connection."},
	CauseUnreadData: {"server closed with the request still unread",
		"Read the server's response before failing, and send large bodies with Expect: 100-continue."},
	CauseNotListening: {"nothing listening (restart or wrong port)",
		"Back off and retry within a short budget; if it persists, check the address."},
	CauseBlackHole: {"packets silently dropped",
		"Keep TCP keepalive below the middlebox idle timeout and bound silence with TCP_USER_TIMEOUT."},
}

// String names the cause.
func (c Cause) String() string {
	if int(c) < len(causeText) {
		return causeText[c].name
	}
	return causeText[CauseUnknown].name
}

// Advice returns one sentence on how to prevent or survive the cause.
func (c Cause) Advice() string {
	if int(c) < len(causeText) {
		return causeText[c].advice
	}
	return causeText[CauseUnknown].advice
}

// Cause returns the likely cause of the failure from its class and the
// connection's history: a reset or close on the first exchange after an
// idle gap, before any answer, means a hop reaped the idle connection; a
// reset while still writing after the peer had answered means it closed
// with the request unread; any other reset or close means the peer or a
// middlebox dropped the connection mid-exchange; a refusal means nothing
// listens; a timeout without a reset means a black hole.
func (e *ConnError) Cause() Cause {
	switch e.Class {
	case ClassRefused:
		return CauseNotListening
	case ClassTimeout:
		if errors.Is(e.Err, syscall.ETIMEDOUT) { // the kernel gave up: keepalive, user timeout, SYN retries
			return CauseBlackHole
		}
		return CauseUnknown
	case ClassReset, ClassBrokenPipe, ClassPeerClosed:
	default:
		return CauseUnknown
	}
	switch {
	case e.Op == "dial":
		return CauseUnknown
	case e.Op == "write" && e.readBack > 0:
		return CauseUnreadData
	case errors.Is(e.Err, ErrIdleLimit), errors.Is(e.Err, ErrMaxLifetime):
		return CauseUnknown // retired by policy before anything failed
	case e.Op == "validate" || (e.Reused && e.afterIdle && e.readBack == 0):
		return CauseIdleReaped
	}
	return CausePeerDied
}
