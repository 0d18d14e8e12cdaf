package rstpool

import (
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

// retireCause maps a retiring verdict of the checkout rule to its cause.
func retireCause(v rule.Verdict) cause {
	switch v {
	case rule.RetireIdle:
		return causeIdle
	case rule.RetireAge:
		return causeLifetime
	case rule.RetireGone:
		return causePeerClosed
	case rule.RetireStray:
		return causeUnsolicited
	}
	return retainIt
}

// facts returns what the checkout rule needs to know of c, idle for idle.
func (c *Conn) facts(idle time.Duration) rule.Conn {
	return rule.Conn{
		Idle:       idle,
		Age:        time.Duration(mono() - c.created),
		PeerClosed: c.eof.Load(),
		Peekable:   c.raw != nil && canPeek,
	}
}

// health peeks at c for the checkout rule. A check that failed means the
// socket is closed or broken.
func (c *Conn) health() rule.Health {
	h, err := c.Check()
	if h == HealthUnknown && err != nil {
		return rule.Reset
	}
	return rule.Health(h)
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
