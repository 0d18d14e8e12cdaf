package rstpool

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"
)

// A ConnError is a failure on a tracked connection. It records what the
// connection had done, so that the caller or a retry rule can tell a reused
// connection that died while idle from a peer that died in the middle of
// an exchange. errors.Is and errors.As see through it to the underlying
// error (syscall.ECONNRESET, os.ErrDeadlineExceeded …).
type ConnError struct {
	Op     string        // "dial", "read", "write" or "validate" (the check before a write)
	Class  Class         // what happened on the wire
	Reused bool          // the connection had been handed out, or used and left idle, before this piece of work
	Idle   time.Duration // the last quiet spell before the failure; 0: none
	Age    time.Duration // since the connection was dialed
	// Written is how many bytes of this piece of work may have left: since
	// the checkout of the consumer that handed the connection out, else
	// since the dial, each write counting from the moment it starts. It
	// never undercounts; 0 means nothing of the work left.
	Written int64
	Err     error  // the underlying error
	Addr    string // the remote address, when known

	// The evidence of how it died, read from the connection when it failed.
	readBack     int64   // bytes of the answer read (since the work began or the last quiet spell)
	quietDeath   bool    // nothing arrived after the last quiet spell
	diedIdle     bool    // and the peer took nothing sent after it: it was gone while idle
	connectReset bool    // a new connection failed before the peer sent a byte, at its first work
	untouched    bool    // and the peer took none of its bytes: a refused connect by another name
	dialed       destKey // the address the connection was dialed to
}

// Error reads like a net.OpError: "rstpool: CLASS (history): underlying".
// The operation and address are added only when the underlying error does
// not already say them.
func (e *ConnError) Error() string {
	var b strings.Builder
	b.WriteString("rstpool: ")
	var op *net.OpError
	if !errors.As(e.Err, &op) {
		b.WriteString(e.Op)
		if e.Addr != "" {
			b.WriteString(" " + e.Addr)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Class.String())
	if d := e.details(); d != "" {
		b.WriteString(" (" + d + ")")
	}
	if e.Err != nil {
		b.WriteString(": " + strings.TrimPrefix(e.Err.Error(), "rstpool: "))
	}
	return b.String()
}

// details is the history and the likely cause, "" when there is neither.
func (e *ConnError) details() string {
	var parts []string
	if e.Op != "dial" {
		h := "fresh"
		if e.Reused {
			h = "reused"
		}
		if e.Idle > 0 {
			h += ", idle " + round(e.Idle).String()
		}
		parts = append(parts, fmt.Sprintf("%s, age %s, %d bytes written", h, round(e.Age), e.Written))
	}
	if c := e.Cause(); c != CauseUnknown {
		parts = append(parts, "likely "+c.String())
	}
	return strings.Join(parts, "; ")
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

// connErrorOf returns the first *ConnError in err's chain, or nil. It is
// errors.As without the allocation its target costs, for the paths that
// report every failure.
func connErrorOf(err error) *ConnError {
	var found *ConnError
	walk(err, func(e error) bool {
		found, _ = e.(*ConnError)
		return found != nil
	})
	return found
}

// walk calls f on err and every error it wraps, depth first, as errors.Is
// does, until f returns true; it reports whether f did.
func walk(err error, f func(error) bool) bool {
	for err != nil {
		if f(err) {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if walk(e, f) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

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

// NothingWritten reports whether no byte of the piece of work left, so that
// repeating it on another connection cannot duplicate it. A failed dial
// wrote nothing either, but says nothing of work done on other connections.
func (e *ConnError) NothingWritten() bool { return e.Written == 0 && e.Op != "dial" }

// A Cause is the likely reason for a failure, read from the evidence the
// connection kept.
type Cause uint8

// The causes rstpool recognizes, in the order of how often they explain
// resets in service-to-service traffic.
const (
	CauseUnknown      Cause = iota
	CauseIdleReaped         // the peer or a hop ended the connection while it sat idle; the client reused it
	CausePeerDied           // the peer or a middlebox dropped the connection mid-exchange
	CauseUnreadData         // the server answered and closed while the client was still sending
	CauseNotListening       // nothing listened at the address: a restart or a wrong port
	CauseBlackHole          // packets vanished without a reset
	CauseDown               // every connect failed for a whole RefusedRetry budget: not dialed
	CauseConnectReset       // a new connection was reset or closed before its first answer: a proxy without a healthy upstream, an overflowing accept queue
)

var causeText = [...]struct{ name, advice string }{
	CauseUnknown: {"unknown", "No pattern stands out; look at the class and the peer's logs."},
	CauseIdleReaped: {"idle connection closed by the peer or a hop",
		"Keep the client idle timeout below every hop's (Chain.Check) and retry idempotent requests once."},
	CausePeerDied: {"peer or middlebox dropped the connection mid-exchange",
		"Check the peer for restarts and crashes; retry idempotent work on a new connection."},
	CauseUnreadData: {"server closed with the request still unread",
		"Read the server's response before failing, and send large bodies with Expect: 100-continue."},
	CauseNotListening: {"nothing listening (restart or wrong port)",
		"Back off and retry within a short budget; if it persists, check the address."},
	CauseBlackHole: {"packets silently dropped",
		"Keep TCP keepalive below the middlebox idle timeout and bound silence with TCP_USER_TIMEOUT."},
	CauseDown: {"destination down (refused for the whole retry budget)",
		"The server is down or not listening; rstpool fails fast and probes until it is back."},
	CauseConnectReset: {"connection reset before its first answer",
		"A proxy has no healthy upstream or the server's accept queue overflowed: back off as for a refusal."},
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
// evidence the connection kept: a refusal means nothing listens, and a
// connect answered by a reset that whatever accepted it refused; a kernel
// timeout without a reset means a black hole; a reset while still writing
// after the peer had answered means it closed with the request unread; a
// new connection reset or closed before it carried a byte back was refused
// by whatever accepted it; a reset or close found by the check before a
// write, or answering bytes the peer never took after a quiet spell, on a
// connection used before, means it was closed while idle; any other reset
// or close happened mid-exchange.
func (e *ConnError) Cause() Cause {
	switch e.Class {
	case ClassRefused:
		if isDown(e.Err) {
			return CauseDown
		}
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
	case e.Op == "dial" && e.Class == ClassReset:
		return CauseConnectReset // whatever accepted the connect reset it at once
	case e.Op == "dial":
		return CauseUnknown
	case e.Op == "write" && e.readBack > 0:
		return CauseUnreadData
	case e.connectReset:
		return CauseConnectReset
	case e.Reused && e.diedIdle:
		return CauseIdleReaped
	}
	return CausePeerDied
}

// stale reports whether the work failed with a reused connection that had
// given nothing back since it sat idle: the path lost the connection, not
// the server the work. Retrying such work replaces what was lost and adds
// nothing to a server's load, so no retry budget pays for it.
func (e *ConnError) stale() bool { return e.Reused && e.quietDeath && e.Op != "dial" }
