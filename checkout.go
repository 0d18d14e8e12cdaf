package rstpool

import (
	"errors"
	"time"

	"github.com/rstpool/rstpool/internal/rule"
)

// A cause is why a consumer closed a connection instead of handing it
// out, or retainIt.
type cause uint8

const (
	retainIt         cause = iota
	causeIdle              // idle beyond the idle limit
	causeLifetime          // older than its lifetime
	causePeerClosed        // the peer closed or reset it while it sat idle
	causeUnsolicited       // bytes nobody asked for were waiting
	causePingFailed        // the ping failed
	numCauses
)

var causeNames = [numCauses]string{"", rule.RetireIdle.String(), rule.RetireAge.String(),
	rule.RetireGone.String(), rule.RetireStray.String(), "ping-failed"}

// errPendingData is why a connection with bytes nobody asked for, and no
// driver ping to read them, is retired.
var errPendingData = errors.New("rstpool: unsolicited data pending on an idle connection")

// retirements are, for each retiring verdict of the checkout rule, the
// cause a consumer counts and the error it reports.
var retirements = [...]struct {
	cause cause
	err   error
}{
	rule.RetireIdle:  {causeIdle, ErrIdleLimit},
	rule.RetireAge:   {causeLifetime, ErrMaxLifetime},
	rule.RetireGone:  {causePeerClosed, ErrPeerClosed},
	rule.RetireStray: {causeUnsolicited, errPendingData},
}

// retireCause maps a retiring verdict of the checkout rule to its cause.
func retireCause(v rule.Verdict) cause {
	if v.Retires() && int(v) < len(retirements) {
		return retirements[v].cause
	}
	return retainIt
}

// verdictErr is the error of a retiring verdict.
func verdictErr(v rule.Verdict) error {
	if v.Retires() && int(v) < len(retirements) {
		return retirements[v].err
	}
	return ErrPeerClosed
}

// facts returns what the checkout rule needs to know of c at now (a
// mono time the caller already read), idle for idle.
func (c *Conn) facts(now int64, idle time.Duration) rule.Conn {
	return rule.Conn{
		Idle:       idle,
		Age:        time.Duration(now - c.created),
		PeerClosed: c.eof.Load(),
		Peekable:   c.raw != nil && canPeek,
	}
}

// health peeks at c for the checkout rule.
func (c *Conn) health() rule.Health {
	h, err := c.Check()
	return rule.Peeked(rule.Health(h), err)
}

// retireEvent reports a retirement to o.
func retireEvent(o Observer, source string, c cause, idle time.Duration, addr string) {
	if o == nil {
		return
	}
	kind := EventRetired
	if c == causePeerClosed || c == causeUnsolicited || c == causePingFailed {
		kind = EventCaughtDead
	}
	o(Event{Kind: kind, Source: source, Addr: addr, Reason: causeNames[c], Duration: idle})
}
